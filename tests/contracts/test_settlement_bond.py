"""Settlement: construction (genesis checkpoint, parameters) and the operator bond."""

from __future__ import annotations

from typing import Any

import pytest

ZERO = "0x0000000000000000000000000000000000000000"
ETH = 10**18
# Mirrors conftest (test modules cannot import it); test_constants_mirror_conftest_succeeds checks.
MIN_BOND = ETH
WINDOW = 600


# ---------------------------------------------------------------- constructor


def test_constants_mirror_conftest_succeeds(consts: Any) -> None:
    assert (MIN_BOND, WINDOW) == (consts.MIN_BOND, consts.WINDOW)


def test_constructor_stores_parameters_succeeds(
    settlement: Any, usdc: Any, operator: Any, oracle: Any, project: Any, consts: Any
) -> None:
    assert settlement.operator() == operator.address
    assert settlement.oracle() == oracle.address
    assert settlement.disputes() == consts.DISPUTER
    assert settlement.minBond() == MIN_BOND
    assert settlement.challengeWindow() == WINDOW
    assert settlement.forcedDeadline() == consts.FORCED_DEADLINE == 300
    assert settlement.withdrawalsClaimed() == 0
    assert settlement.bond() == 0
    vault = project.CollateralVault.at(settlement.vault())
    hatch = project.EscapeHatch.at(settlement.escapeHatch())
    assert vault.settlement() == settlement.address
    assert vault.escapeHatch() == hatch.address
    assert vault.token() == usdc.address
    assert hatch.settlement() == settlement.address
    assert hatch.forcedDeadline() == consts.FORCED_DEADLINE
    assert hatch.livenessTimeout() == consts.LIVENESS == 1800
    assert hatch.forcedRequestFee() == consts.FORCED_FEE == 10**15
    assert hatch.claimWindow() == consts.CLAIM_WINDOW == 600
    assert not hatch.isFrozen()
    assert (hatch.frozenAt(), hatch.claimWindowEnd(), hatch.pool(), hatch.registeredTotal()) == (
        0,
        0,
        0,
        0,
    )
    assert hatch.forcedRequestCount() == 0


def test_constructor_exposes_protocol_constants_succeeds(settlement: Any, hatch: Any) -> None:
    assert settlement.PROTOCOL_VERSION() == 2
    assert settlement.MAX_BATCH_BYTES() == 131_072
    assert settlement.MAX_BATCH_RECORDS() == 2**20
    assert settlement.STATE_TREE_DEPTH() == 32
    assert settlement.WITHDRAWAL_TREE_DEPTH() == 32
    assert settlement.TRACE_TREE_DEPTH() == 20
    assert settlement.MAX_WITHDRAWALS() == 2**32
    assert settlement.MAX_CHALLENGE_WINDOW() == 365 * 24 * 3600
    assert settlement.MAX_TIMEOUT() == 365 * 24 * 3600
    assert (hatch.FORCED_WITHDRAWAL(), hatch.FORCED_EXIT()) == (1, 2)
    assert (hatch.FREEZE_FORCED_REQUEST_OVERDUE(), hatch.FREEZE_LIVENESS()) == (1, 2)
    assert hatch.FREEZE_DEPOSIT_OVERDUE() == 3


def test_constructor_stores_final_genesis_checkpoint_succeeds(
    settlement: Any, chain: Any, consts: Any
) -> None:
    genesis_header = {n: consts.ZERO32 if t == "bytes32" else 0 for n, t in consts.HEADER_FIELDS}
    genesis_header["stateRoot"] = consts.GENESIS_ROOT
    cp = settlement.getCheckpoint(0)
    deployed_at = chain.blocks[chain.get_receipt(settlement.txn_hash).block_number].timestamp
    assert bytes(cp.checkpointHash) == consts.header_hash(genesis_header)
    assert bytes(cp.stateRoot) == consts.GENESIS_ROOT
    assert bytes(cp.withdrawalsRoot) == consts.ZERO32
    assert (cp.withdrawalCount, cp.depositCursor, cp.forcedCursor, cp.timestamp) == (0, 0, 0, 0)
    assert cp.postedAt == deployed_at
    assert settlement.latestSeq() == 0
    assert settlement.lastFinalizedSeq() == 0
    assert settlement.isFinalized(0)
    assert settlement.finalizesAt(0) == deployed_at


YEAR = 365 * 24 * 3600


@pytest.mark.parametrize(
    "overrides",
    [
        {"token": ZERO},
        {"token": "0x000000000000000000000000000000000000dEaD"},  # no code
        {"operator": ZERO},
        {"oracle": ZERO},
        {"disputes": ZERO},
    ],
    ids=["zero-token", "token-without-code", "zero-operator", "zero-oracle", "zero-disputes"],
)
def test_constructor_invalid_parameter_reverts(
    project: Any,
    deployer: Any,
    usdc: Any,
    operator: Any,
    oracle: Any,
    reverts: Any,
    consts: Any,
    overrides: dict[str, Any],
) -> None:
    args = consts.settlement_args(usdc, operator, oracle, b"\x11" * 32, **overrides)
    with reverts(project.Settlement.Settlement_InvalidParameter):
        deployer.deploy(project.Settlement, *args)


@pytest.mark.parametrize(
    ("overrides", "error", "inputs"),
    [
        ({"challengeWindow": 0}, "ChallengeWindowOutOfRange", (0, YEAR)),
        ({"challengeWindow": YEAR + 1}, "ChallengeWindowOutOfRange", (YEAR + 1, YEAR)),
        ({"forcedDeadline": 0}, "ForcedDeadlineOutOfRange", (0, YEAR)),
        ({"forcedDeadline": YEAR + 1}, "ForcedDeadlineOutOfRange", (YEAR + 1, YEAR)),
        ({"livenessTimeout": 0}, "LivenessTimeoutOutOfRange", (0, YEAR)),
        ({"livenessTimeout": YEAR + 1}, "LivenessTimeoutOutOfRange", (YEAR + 1, YEAR)),
        ({"claimWindow": 0}, "ClaimWindowOutOfRange", (0, YEAR)),
        ({"claimWindow": YEAR + 1}, "ClaimWindowOutOfRange", (YEAR + 1, YEAR)),
        ({"forcedDeadline": 600}, "ForcedDeadlineNotBelowChallengeWindow", (600, 600)),
        ({"forcedDeadline": 601}, "ForcedDeadlineNotBelowChallengeWindow", (601, 600)),
        ({"livenessTimeout": 600}, "LivenessTimeoutNotAboveChallengeWindow", (600, 600)),
        ({"livenessTimeout": 599}, "LivenessTimeoutNotAboveChallengeWindow", (599, 600)),
    ],
)
def test_constructor_parameter_out_of_range_reverts(
    project: Any,
    deployer: Any,
    usdc: Any,
    operator: Any,
    oracle: Any,
    reverts: Any,
    consts: Any,
    overrides: dict[str, Any],
    error: str,
    inputs: tuple[int, int],
) -> None:
    args = consts.settlement_args(usdc, operator, oracle, b"\x11" * 32, **overrides)
    custom = getattr(project.Settlement, "Settlement_" + error)
    names = [i.name for i in custom.abi.inputs]
    with reverts(custom, **dict(zip(names, inputs, strict=True))):
        deployer.deploy(project.Settlement, *args)


def test_constructor_longest_timeouts_and_zero_fee_succeeds(
    project: Any, deployer: Any, usdc: Any, operator: Any, oracle: Any, consts: Any
) -> None:
    args = consts.settlement_args(
        usdc,
        operator,
        oracle,
        challengeWindow=YEAR - 1,
        forcedDeadline=YEAR - 2,
        livenessTimeout=YEAR,
        claimWindow=YEAR,
        forcedRequestFee=0,
    )
    settlement = deployer.deploy(project.Settlement, *args)
    hatch = consts.hatch_of(settlement)
    assert settlement.challengeWindow() == YEAR - 1
    assert (hatch.forcedDeadline(), hatch.livenessTimeout()) == (YEAR - 2, YEAR)
    assert (hatch.forcedRequestFee(), hatch.claimWindow()) == (0, YEAR)


def test_constructor_devnet_and_production_parameters_succeeds(
    project: Any, deployer: Any, usdc: Any, operator: Any, oracle: Any, consts: Any
) -> None:
    # spec D7: devnet W 10 min, D 5 min, L 30 min, claim 10 min; production 7 d, 5 d, 14 d, 14 d.
    day = 24 * 3600
    for w, d, live, claim in ((600, 300, 1800, 600), (7 * day, 5 * day, 14 * day, 14 * day)):
        args = consts.settlement_args(
            usdc,
            operator,
            oracle,
            challengeWindow=w,
            forcedDeadline=d,
            livenessTimeout=live,
            claimWindow=claim,
        )
        settlement = deployer.deploy(project.Settlement, *args)
        assert consts.hatch_of(settlement).claimWindow() == claim


def test_constructor_genesis_markets_listed_succeeds(
    project: Any, deployer: Any, usdc: Any, operator: Any, oracle: Any, consts: Any
) -> None:
    """The constructor publishes the genesis market leaves and symbols, byte for byte, with the
    genesis root: a reader rebuilds the genesis state from this one event."""
    leaves = [bytes(range(i, i + 32)) * 15 for i in range(3)]
    symbols = ["BTC-USD", "ETH-USD", ""]
    args = consts.settlement_args(
        usdc,
        operator,
        oracle,
        b"\x22" * 32,
        genesisMarketLeaves=leaves,
        genesisMarketSymbols=symbols,
    )
    settlement = deployer.deploy(project.Settlement, *args)
    receipt = settlement.creation_metadata.receipt
    (event,) = [e for e in receipt.events if e.event_name == "GenesisMarketsListed"]
    assert bytes(event.stateRoot) == b"\x22" * 32
    assert [bytes(leaf) for leaf in event.marketLeaves] == leaves
    assert list(event.symbols) == symbols
    assert bytes(settlement.getCheckpoint(0).stateRoot) == b"\x22" * 32


# ---------------------------------------------------------------- postBond


def test_postBond_adds_to_bond_succeeds(settlement: Any, operator: Any) -> None:
    first = settlement.postBond(sender=operator, value=ETH)
    second = settlement.postBond(sender=operator, value=2 * ETH)
    assert first.events == [settlement.BondPosted(operator, ETH, ETH)]
    assert second.events == [settlement.BondPosted(operator, 2 * ETH, 3 * ETH)]
    assert settlement.bond() == 3 * ETH
    assert settlement.balance == 3 * ETH


def test_postBond_not_operator_reverts(settlement: Any, stranger: Any, reverts: Any) -> None:
    with reverts(settlement.Settlement_NotOperator, caller=stranger.address):
        settlement.postBond(sender=stranger, value=ETH)


def test_postBond_zero_value_reverts(settlement: Any, operator: Any, reverts: Any) -> None:
    with reverts(settlement.Settlement_ZeroAmount):
        settlement.postBond(sender=operator, value=0)


# ---------------------------------------------------------------- withdrawBond


def test_withdrawBond_above_minimum_succeeds(settlement: Any, operator: Any) -> None:
    settlement.postBond(sender=operator, value=3 * ETH)
    before = operator.balance
    receipt = settlement.withdrawBond(2 * ETH, sender=operator)
    assert receipt.events == [settlement.BondWithdrawn(operator, 2 * ETH, ETH)]
    assert settlement.bond() == MIN_BOND == ETH
    assert settlement.balance == ETH
    assert operator.balance == before + 2 * ETH - receipt.total_fees_paid


def test_withdrawBond_not_operator_reverts(bonded: Any, stranger: Any, reverts: Any) -> None:
    with reverts(bonded.Settlement_NotOperator, caller=stranger.address):
        bonded.withdrawBond(1, sender=stranger)


def test_withdrawBond_zero_amount_reverts(bonded: Any, operator: Any, reverts: Any) -> None:
    with reverts(bonded.Settlement_ZeroAmount):
        bonded.withdrawBond(0, sender=operator)


def test_withdrawBond_into_minimum_reverts(settlement: Any, operator: Any, reverts: Any) -> None:
    settlement.postBond(sender=operator, value=MIN_BOND + 5)
    with reverts(settlement.Settlement_BondLocked, requested=6, withdrawable=5):
        settlement.withdrawBond(6, sender=operator)


def test_withdrawBond_below_minimum_bond_reverts(
    settlement: Any, operator: Any, reverts: Any
) -> None:
    settlement.postBond(sender=operator, value=MIN_BOND // 2)
    with reverts(settlement.Settlement_BondLocked, requested=1, withdrawable=0):
        settlement.withdrawBond(1, sender=operator)


def test_withdrawBond_operator_rejects_eth_reverts(
    project: Any, deployer: Any, usdc: Any, oracle: Any, reverts: Any, consts: Any
) -> None:
    forwarder = deployer.deploy(project.OperatorForwarder)
    settlement = deployer.deploy(
        project.Settlement, *consts.settlement_args(usdc, forwarder, oracle, b"\x11" * 32)
    )
    forwarder.forward(
        settlement, settlement.postBond.encode_input(), sender=deployer, value=2 * ETH
    )
    assert settlement.bond() == 2 * ETH
    with reverts(settlement.Settlement_TransferFailed):
        forwarder.forward(settlement, settlement.withdrawBond.encode_input(ETH), sender=deployer)
    assert settlement.bond() == 2 * ETH


# ---------------------------------------------------------------- withdrawBond: the pending lock


def test_withdrawBond_checkpoint_pending_reverts(
    checkpoints: Any, operator: Any, reverts: Any
) -> None:
    settlement = checkpoints.settlement
    settlement.postBond(sender=operator, value=ETH)  # 1 ETH above the minimum
    checkpoints.post_next()
    with reverts(settlement.Settlement_CheckpointsPending, latestSeq=1, lastFinalizedSeq=0):
        settlement.withdrawBond(1, sender=operator)


def test_withdrawBond_one_of_several_pending_reverts(
    checkpoints: Any, operator: Any, chain: Any, reverts: Any
) -> None:
    """Finalized checkpoints do not unlock the bond while a later one is pending."""
    settlement = checkpoints.settlement
    settlement.postBond(sender=operator, value=ETH)
    checkpoints.post_next()
    checkpoints.post_next()
    checkpoints.finalize()
    checkpoints.post_next()
    with reverts(settlement.Settlement_CheckpointsPending, latestSeq=3, lastFinalizedSeq=2):
        settlement.withdrawBond(ETH, sender=operator)


def test_withdrawBond_at_finality_of_latest_succeeds(
    checkpoints: Any, operator: Any, chain: Any, reverts: Any
) -> None:
    """The lock lifts exactly when the latest checkpoint finalizes (one second earlier it holds)."""
    settlement = checkpoints.settlement
    settlement.postBond(sender=operator, value=ETH)
    checkpoints.post_next()
    final_at = settlement.finalizesAt(1)
    chain.pending_timestamp = final_at - 1
    with reverts(settlement.Settlement_CheckpointsPending, latestSeq=1, lastFinalizedSeq=0):
        settlement.withdrawBond(ETH, sender=operator)
    chain.pending_timestamp = final_at
    receipt = settlement.withdrawBond(ETH, sender=operator)
    assert receipt.events == [settlement.BondWithdrawn(operator, ETH, MIN_BOND)]


def test_withdrawBond_after_invalidating_pending_succeeds(
    checkpoints: Any, operator: Any, disputer: Any
) -> None:
    """Once the dispute contract took the pending checkpoints away, every posted one is final."""
    settlement = checkpoints.settlement
    settlement.postBond(sender=operator, value=ETH)
    checkpoints.post_next()
    checkpoints.finalize()
    checkpoints.post_next()
    settlement.invalidateFrom(2, sender=disputer)
    receipt = settlement.withdrawBond(ETH, sender=operator)
    assert receipt.events == [settlement.BondWithdrawn(operator, ETH, MIN_BOND)]


def test_withdrawBond_pending_at_freeze_reverts(
    checkpoints: Any, operator: Any, stranger: Any, chain: Any, reverts: Any, consts: Any
) -> None:
    """A checkpoint pending at the freeze never finalizes (the Settlement's clock stops), so the
    bond stays for the dispute that may still come."""
    settlement = checkpoints.settlement
    settlement.postBond(sender=operator, value=ETH)
    checkpoints.post_next()
    consts.freeze_now(settlement, stranger, chain)
    chain.pending_timestamp += 10 * WINDOW
    with reverts(settlement.Settlement_CheckpointsPending, latestSeq=1, lastFinalizedSeq=0):
        settlement.withdrawBond(ETH, sender=operator)
