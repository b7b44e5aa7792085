"""EscapeHatch.freezeForDeposit (reason 3: a deposit the latest checkpoint leaves out stays
unincluded for the forced deadline) exactly at its deadline, every way the call can be wrong, the
refund of the censored deposit afterwards; and the freeze guard: neither freeze nor
freezeForDeposit runs while the vault is paying out."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from eth_abi import encode

from isoperp.hashing import keccak256

USDC = 10**6
DEADLINE = 300
DEPOSIT_OVERDUE = 3
FORCED_OVERDUE = 1


def _deposit_log(vault: Any, chain: Any, index: int) -> Any:
    logs = list(vault.Deposited.range(0, chain.blocks.head.number + 1))
    return next(log for log in logs if log.index == index)


@pytest.fixture
def censored(
    deploy_settlement: Any, usdc: Any, consts: Any, alice: Any, bob: Any, chain: Any
) -> Any:
    """alice's deposit 0 is included by checkpoint 1 (finalized); bob's deposit 1 (5,000 USDC) is
    left out by checkpoint 2, posted after it: the operator keeps posting but censors bob."""
    settlement, vault, cps = deploy_settlement(usdc)
    consts.fund_and_deposit(usdc, vault, alice, 600_000 * USDC)
    cps.post_next(depositCursor=1)
    cps.finalize()
    consts.fund_and_deposit(usdc, vault, bob, 5_000 * USDC)
    cps.post_next(depositCursor=1)
    log = _deposit_log(vault, chain, 1)
    return SimpleNamespace(
        settlement=settlement,
        hatch=cps.hatch,
        vault=vault,
        checkpoints=cps,
        deposit=(log.owner, log.amount, log.timestamp),
        deadline=log.timestamp + DEADLINE,
    )


def test_freezeForDeposit_at_deadline_succeeds(
    censored: Any, usdc: Any, stranger: Any, chain: Any, bob: Any
) -> None:
    c = censored
    chain.pending_timestamp = c.deadline
    receipt = c.hatch.freezeForDeposit(*c.deposit, sender=stranger)
    assert chain.blocks[receipt.block_number].timestamp == c.deadline
    # Reason 3; the escape checkpoint is #1 (checkpoint 2 is still inside its challenge window).
    assert receipt.events[0] == c.hatch.Frozen(stranger, DEPOSIT_OVERDUE, 1)
    assert c.hatch.isFrozen() and c.hatch.frozenAt() == c.deadline and c.hatch.frozenSeq() == 1
    # The pool leaves bob's unincluded deposit out: it is refunded in full, outside the pool.
    assert c.hatch.pool() == 600_000 * USDC
    owner, amount, ts = c.deposit
    assert owner == bob.address and amount == 5_000 * USDC
    refund = c.hatch.refundDeposit(1, owner, amount, ts, sender=stranger)
    assert refund.events == [c.hatch.DepositRefunded(1, bob, amount)]
    before = usdc.balanceOf(bob)
    c.hatch.withdrawEscaped(sender=bob)  # at once: refunds do not wait for the claim window
    assert usdc.balanceOf(bob) - before == amount
    assert c.hatch.owedTo(bob) == 0
    assert usdc.balanceOf(c.vault) == 600_000 * USDC


def test_freezeForDeposit_one_second_early_reverts(
    censored: Any, stranger: Any, chain: Any, reverts: Any
) -> None:
    c = censored
    chain.pending_timestamp = c.deadline - 1
    with reverts(c.hatch.EscapeHatch_DepositNotOverdue, deadline=c.deadline):
        c.hatch.freezeForDeposit(*c.deposit, sender=stranger)
    assert not c.hatch.isFrozen()


def test_freezeForDeposit_every_deposit_included_reverts(
    censored: Any, stranger: Any, chain: Any, reverts: Any
) -> None:
    c = censored
    c.checkpoints.post_next(depositCursor=2)  # the operator includes bob's deposit after all
    chain.pending_timestamp = c.deadline + 1
    with reverts(c.hatch.EscapeHatch_NoPendingDeposit, cursor=2):
        c.hatch.freezeForDeposit(*c.deposit, sender=stranger)


def test_freezeForDeposit_later_deposit_not_at_cursor_reverts(
    censored: Any, usdc: Any, consts: Any, stranger: Any, chain: Any, reverts: Any
) -> None:
    # Only the entry at the latest checkpoint's cursor counts: a later unincluded deposit's data
    # does not extend h_cursor.
    c = censored
    consts.fund_and_deposit(usdc, c.vault, stranger, 7)
    later = _deposit_log(c.vault, chain, 2)
    chain.pending_timestamp = later.timestamp + DEADLINE
    with reverts(c.hatch.EscapeHatch_DepositMismatch, expected=bytes(c.vault.depositPrefixHash(2))):
        c.hatch.freezeForDeposit(later.owner, later.amount, later.timestamp, sender=stranger)


@pytest.mark.parametrize("field", ["owner", "amount", "timestamp"])
def test_freezeForDeposit_wrong_data_reverts(
    censored: Any, alice: Any, stranger: Any, chain: Any, reverts: Any, field: str
) -> None:
    c = censored
    owner, amount, ts = c.deposit
    wrong = {
        "owner": (alice.address, amount, ts),
        "amount": (owner, amount + 1, ts),
        # An earlier timestamp would make the deposit look overdue sooner.
        "timestamp": (owner, amount, ts - DEADLINE),
    }[field]
    chain.pending_timestamp = c.deadline
    got = keccak256(
        encode(
            ["bytes32", "uint64", "address", "uint128", "uint64"],
            [bytes(c.vault.depositPrefixHash(1)), 1, *wrong],
        )
    )
    with reverts(
        c.hatch.EscapeHatch_DepositMismatch, expected=bytes(c.vault.depositPrefixHash(2)), got=got
    ):
        c.hatch.freezeForDeposit(*wrong, sender=stranger)


def test_freezeForDeposit_already_frozen_reverts(
    censored: Any, stranger: Any, chain: Any, reverts: Any
) -> None:
    c = censored
    chain.pending_timestamp = c.deadline
    c.hatch.freezeForDeposit(*c.deposit, sender=stranger)
    with reverts(c.hatch.EscapeHatch_Frozen):
        c.hatch.freezeForDeposit(*c.deposit, sender=stranger)
    with reverts(c.hatch.EscapeHatch_Frozen):
        c.hatch.freeze(sender=stranger)


# ---------------------------------------------------------------- the vault-busy guard
#
# What the guard protects: Settlement.claimWithdrawal counts a withdrawal as claimed BEFORE the
# vault moves the tokens (so a re-entry cannot claim it twice). A freeze taken in between (from a
# token hook of the payout) would see the withdrawal as no longer owed while its tokens are still in
# the vault, and fix a pool overstated by exactly that amount: escapes would then be promised
# tokens that leave the vault a moment later. The vault's transient lock (`locked()`) marks that
# window; both freezes refuse to run inside it.

WITHDRAWAL = 100 * USDC


@pytest.fixture
def paying(
    deploy_settlement: Any,
    project: Any,
    deployer: Any,
    consts: Any,
    alice: Any,
    bob: Any,
    stranger: Any,
    chain: Any,
) -> Any:
    """A MisbehavingToken deployment: alice's deposit included, a finalized withdrawal of 100 USDC
    to alice, bob's deposit left out (overdue) and a forced request overdue, so that both freezes
    are allowed; a FreezeProbe that the token calls at the start of every transfer."""
    token = deployer.deploy(project.MisbehavingToken)
    settlement, vault, cps = deploy_settlement(token)
    consts.fund_and_deposit(token, vault, alice, 1_000 * USDC)
    w = consts.Withdrawals([(0, alice.address, WITHDRAWAL)])
    header, _ = cps.post_next(
        depositCursor=1,
        withdrawalsRoot=w.root,
        withdrawalCount=1,
        withdrawalTotal=WITHDRAWAL,
    )
    hatch = cps.hatch
    hatch.requestForcedWithdrawal(0, 1, sender=stranger, value=consts.FORCED_FEE)
    consts.fund_and_deposit(token, vault, bob, 5 * USDC)
    cps.finalize()  # checkpoint 1 final; the forced request and bob's deposit overdue
    log = _deposit_log(vault, chain, 1)
    probe = deployer.deploy(project.FreezeProbe, hatch, settlement, token, vault)
    token.setCallback(probe, probe.poke.encode_input(), sender=deployer)
    return SimpleNamespace(
        token=token,
        settlement=settlement,
        vault=vault,
        hatch=hatch,
        probe=probe,
        claim=(header["seq"], 0, 0, alice.address, WITHDRAWAL, w.proof(0)),
        deposit=(log.owner, log.amount, log.timestamp),
    )


@pytest.mark.parametrize("for_deposit", [False, True], ids=["freeze", "freezeForDeposit"])
def test_freeze_inside_payout_reverts(
    paying: Any, deployer: Any, stranger: Any, reverts: Any, for_deposit: bool
) -> None:
    p = paying
    p.probe.configure(for_deposit, True, *p.deposit, sender=deployer)
    # The hook's freeze reverts, and with it the whole claim.
    with reverts(p.hatch.EscapeHatch_VaultBusy):
        p.settlement.claimWithdrawal(*p.claim, sender=stranger)
    assert not p.hatch.isFrozen()
    assert p.settlement.withdrawalsClaimed() == 0


@pytest.mark.parametrize("for_deposit", [False, True], ids=["freeze", "freezeForDeposit"])
def test_freeze_inside_payout_would_overstate_pool_reverts(
    paying: Any, deployer: Any, alice: Any, stranger: Any, for_deposit: bool
) -> None:
    p = paying
    p.probe.configure(for_deposit, False, *p.deposit, sender=deployer)
    p.settlement.claimWithdrawal(*p.claim, sender=stranger)
    # Inside the payout the freeze was refused with VaultBusy ...
    assert p.probe.pokes() == 1
    selector = keccak256(b"EscapeHatch_VaultBusy()")[:4]
    assert bytes(p.probe.lastError()) == selector
    assert not p.hatch.isFrozen()
    assert p.token.balanceOf(alice) == WITHDRAWAL
    # ... where it would have computed the pool from a balance that still held the claimed
    # withdrawal while counting it as paid: balance - (withdrawals owed) - (unincluded deposits).
    owed_then = p.settlement.cumulativeWithdrawalTotal(1) - p.probe.claimedSeen()
    refundable = p.vault.depositTotal() - p.vault.depositedBefore(1)
    pool_then = p.probe.vaultBalanceSeen() - owed_then - refundable
    # The same freeze outside the payout fixes the true pool.
    if for_deposit:
        p.hatch.freezeForDeposit(*p.deposit, sender=stranger)
    else:
        p.hatch.freeze(sender=stranger)
    assert p.hatch.pool() == 900 * USDC == p.token.balanceOf(p.vault) - refundable
    assert pool_then - p.hatch.pool() == WITHDRAWAL  # overstated by exactly the payout
