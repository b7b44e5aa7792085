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
    settlement: Any, usdc: Any, operator: Any, project: Any
) -> None:
    assert settlement.operator() == operator.address
    assert settlement.minBond() == MIN_BOND
    assert settlement.challengeWindow() == WINDOW
    assert settlement.bond() == 0
    vault = project.CollateralVault.at(settlement.vault())
    assert vault.settlement() == settlement.address
    assert vault.token() == usdc.address
    assert settlement.forcedRequestCount() == 0


def test_constructor_exposes_protocol_constants_succeeds(settlement: Any) -> None:
    assert settlement.PROTOCOL_VERSION() == 1
    assert settlement.MAX_BATCH_BYTES() == 131_072
    assert settlement.STATE_TREE_DEPTH() == 32
    assert settlement.WITHDRAWAL_TREE_DEPTH() == 16
    assert settlement.TRACE_TREE_DEPTH() == 20
    assert settlement.MAX_WITHDRAWALS() == 2**16
    assert settlement.MAX_CHALLENGE_WINDOW() == 365 * 24 * 3600


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


def _deploy_args(usdc: Any, operator: Any, overrides: dict[str, Any]) -> list[Any]:
    args = {"token": usdc.address, "operator": operator.address, "window": WINDOW, **overrides}
    return [args["token"], args["operator"], MIN_BOND, args["window"], b"\x11" * 32]


@pytest.mark.parametrize(
    "overrides",
    [
        {"token": ZERO},
        {"token": "0x000000000000000000000000000000000000dEaD"},  # no code
        {"operator": ZERO},
        {"window": 0},
        {"window": 365 * 24 * 3600 + 1},
    ],
    ids=["zero-token", "token-without-code", "zero-operator", "zero-window", "window-too-long"],
)
def test_constructor_invalid_parameter_reverts(
    project: Any, deployer: Any, usdc: Any, operator: Any, reverts: Any, overrides: dict[str, Any]
) -> None:
    with reverts(project.Settlement.Settlement_InvalidParameter):
        deployer.deploy(project.Settlement, *_deploy_args(usdc, operator, overrides))


def test_constructor_longest_window_succeeds(
    project: Any, deployer: Any, usdc: Any, operator: Any
) -> None:
    args = _deploy_args(usdc, operator, {"window": 365 * 24 * 3600})
    assert deployer.deploy(project.Settlement, *args).challengeWindow() == 365 * 24 * 3600


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
    project: Any, deployer: Any, usdc: Any, reverts: Any
) -> None:
    forwarder = deployer.deploy(project.OperatorForwarder)
    settlement = deployer.deploy(
        project.Settlement, usdc, forwarder, MIN_BOND, WINDOW, b"\x11" * 32
    )
    forwarder.forward(
        settlement, settlement.postBond.encode_input(), sender=deployer, value=2 * ETH
    )
    assert settlement.bond() == 2 * ETH
    with reverts(settlement.Settlement_TransferFailed):
        forwarder.forward(settlement, settlement.withdrawBond.encode_input(ETH), sender=deployer)
    assert settlement.bond() == 2 * ETH
