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
    assert settlement.minBond() == MIN_BOND
    assert settlement.challengeWindow() == WINDOW
    assert settlement.forcedDeadline() == consts.FORCED_DEADLINE == 300
    assert settlement.livenessTimeout() == consts.LIVENESS == 1800
    assert settlement.forcedRequestFee() == consts.FORCED_FEE == 10**15
    assert not settlement.isFrozen()
    assert settlement.frozenAt() == 0
    assert settlement.withdrawalsClaimed() == 0
    assert settlement.escapePool() == (0, 0, 0)
    assert settlement.bond() == 0
    vault = project.CollateralVault.at(settlement.vault())
    assert vault.settlement() == settlement.address
    assert vault.token() == usdc.address
    assert settlement.forcedRequestCount() == 0


def test_constructor_exposes_protocol_constants_succeeds(settlement: Any) -> None:
    assert settlement.PROTOCOL_VERSION() == 1
    assert settlement.MAX_BATCH_BYTES() == 131_072
    assert settlement.STATE_TREE_DEPTH() == 32
    assert settlement.WITHDRAWAL_TREE_DEPTH() == 32
    assert settlement.TRACE_TREE_DEPTH() == 20
    assert settlement.MAX_WITHDRAWALS() == 2**32
    assert settlement.MAX_CHALLENGE_WINDOW() == 365 * 24 * 3600
    assert settlement.MAX_TIMEOUT() == 365 * 24 * 3600
    assert (settlement.FORCED_WITHDRAWAL(), settlement.FORCED_EXIT()) == (1, 2)
    assert (settlement.FREEZE_FORCED_REQUEST_OVERDUE(), settlement.FREEZE_LIVENESS()) == (1, 2)


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
        {"challengeWindow": 0},
        {"challengeWindow": YEAR + 1},
        {"forcedDeadline": 0},
        {"forcedDeadline": YEAR + 1},
        {"livenessTimeout": 0},
        {"livenessTimeout": YEAR + 1},
    ],
    ids=[
        "zero-token",
        "token-without-code",
        "zero-operator",
        "zero-oracle",
        "zero-window",
        "window-too-long",
        "zero-deadline",
        "deadline-too-long",
        "zero-liveness",
        "liveness-too-long",
    ],
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


def test_constructor_longest_timeouts_and_zero_fee_succeeds(
    project: Any, deployer: Any, usdc: Any, operator: Any, oracle: Any, consts: Any
) -> None:
    args = consts.settlement_args(
        usdc,
        operator,
        oracle,
        challengeWindow=YEAR,
        forcedDeadline=YEAR,
        livenessTimeout=YEAR,
        forcedRequestFee=0,
    )
    settlement = deployer.deploy(project.Settlement, *args)
    assert settlement.challengeWindow() == YEAR
    assert (settlement.forcedDeadline(), settlement.livenessTimeout()) == (YEAR, YEAR)
    assert settlement.forcedRequestFee() == 0


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
