"""EscapeHatch after the claim window: late escapes credited from the residual (at most their
value, first come first served), sweepResidual (the operator's, after twice the window; it ends late
escapes), withdrawEscapedTo during and after the window, and a property: for random registered
claims and pools the payouts are exact, within the pool, and independent of the withdrawal order."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isoperp.ledger.model import Account

USDC = 10**6
ALICE, BOB, STRANGER = 300_000 * USDC, 150_000 * USDC, 100_000 * USDC


def _tree(consts: Any, alice: Any, bob: Any, stranger: Any) -> tuple[Any, list[Account]]:
    accounts = [
        Account(0, alice.address, ALICE, 0),
        Account(1, bob.address, BOB, 0),
        Account(2, stranger.address, STRANGER, 0),
    ]
    return consts.StateTree([consts.make_market(0, 1_000), *accounts]), accounts


def _escape(w: Any, consts: Any, account: Account, sender: Any) -> Any:
    return w.hatch.escape(consts.leaf_fields(account), w.tree.proof(account), [], sender=sender)


@pytest.fixture
def late(escape_world: Any, consts: Any, alice: Any, bob: Any, stranger: Any, chain: Any) -> Any:
    """Pool 500,000 USDC (alice's included deposit). Only alice (300,000) registers during the
    window; then the window ends: residual 200,000 for late escapes (bob 150,000, stranger
    100,000)."""
    tree, accounts = _tree(consts, alice, bob, stranger)
    w = escape_world(tree, [(alice, 500_000 * USDC)], claim_window=consts.CLAIM_WINDOW)
    w.accounts = accounts
    _escape(w, consts, accounts[0], alice)
    consts.end_window(w.hatch, chain)
    return w


def test_residual_after_window_succeeds(late: Any) -> None:
    h = late.hatch
    assert (h.pool(), h.registeredTotal(), h.latePaid()) == (500_000 * USDC, ALICE, 0)
    assert h.residual() == 500_000 * USDC - ALICE


@pytest.mark.parametrize(
    ("order", "credits"),
    [
        # bob first: paid in full (at most his value, not the 200k residual); stranger gets
        # what is left.
        (("bob", "stranger"), {"bob": BOB, "stranger": 50_000 * USDC}),
        # stranger first: in full; bob gets only the remaining 100k.
        (("stranger", "bob"), {"stranger": STRANGER, "bob": 100_000 * USDC}),
    ],
)
def test_escape_late_credited_from_residual_first_come_succeeds(
    late: Any,
    consts: Any,
    alice: Any,
    bob: Any,
    stranger: Any,
    order: tuple[str, str],
    credits: dict[str, int],
) -> None:
    w, h = late, late.hatch
    who = {"bob": (bob, w.accounts[1]), "stranger": (stranger, w.accounts[2])}
    residual = h.residual()
    for name in order:
        owner, account = who[name]
        receipt = _escape(w, consts, account, alice)  # anyone may escape for the owner
        assert receipt.events[-1] == h.LateEscapeCredited(owner, account.collateral, credits[name])
        residual -= credits[name]
        assert h.residual() == residual
        # A late escape is a credit (withdrawable at once), never a registered claim.
        assert h.creditOf(owner) == credits[name] and h.registeredOf(owner) == 0
    assert h.residual() == 0 and h.latePaid() == 200_000 * USDC
    assert h.registeredTotal() == ALICE  # registration closed with the window
    # Everybody is paid what the contract promised, and the pool is exactly spent.
    start = w.token.balanceOf(w.vault)
    for owner in (alice, bob, stranger):
        h.withdrawEscaped(sender=owner)
    assert start - w.token.balanceOf(w.vault) == 500_000 * USDC
    assert w.token.balanceOf(bob) == credits["bob"]


def test_escape_late_with_nothing_left_credits_zero_succeeds(
    escape_world: Any, consts: Any, alice: Any, bob: Any, stranger: Any, chain: Any
) -> None:
    # Registered claims exceed the pool: the residual is 0 and a late escape gets nothing.
    tree, accounts = _tree(consts, alice, bob, stranger)
    w = escape_world(tree, [(alice, 200_000 * USDC)], claim_window=consts.CLAIM_WINDOW)
    _escape(w, consts, accounts[0], alice)
    consts.end_window(w.hatch, chain)
    assert w.hatch.residual() == 0
    receipt = _escape(w, consts, accounts[1], bob)
    assert receipt.events[-1] == w.hatch.LateEscapeCredited(bob, BOB, 0)
    assert w.hatch.owedTo(bob) == 0 and w.hatch.owedTo(alice) == 200_000 * USDC
    assert w.hatch.isEscaped(consts.leaf_index(accounts[1]))  # escaped: it cannot try again


# ---------------------------------------------------------------- sweepResidual


def test_sweepResidual_pays_operator_and_ends_late_escapes_succeeds(
    late: Any,
    consts: Any,
    operator: Any,
    alice: Any,
    bob: Any,
    stranger: Any,
    chain: Any,
    reverts: Any,
) -> None:
    w, h = late, late.hatch
    _escape(w, consts, w.accounts[1], bob)  # late: 150,000 of the 200,000 residual
    allowed_at = h.frozenAt() + 2 * consts.CLAIM_WINDOW
    chain.pending_timestamp = allowed_at
    before = w.token.balanceOf(operator)
    receipt = h.sweepResidual(sender=operator)
    assert chain.blocks[receipt.block_number].timestamp == allowed_at
    assert receipt.events[-1] == h.ResidualSwept(operator, 50_000 * USDC)
    assert w.token.balanceOf(operator) - before == 50_000 * USDC
    assert h.swept() and h.residual() == 0 and h.latePaid() == 200_000 * USDC
    with reverts(h.EscapeHatch_LateEscapesEnded):
        _escape(w, consts, w.accounts[2], stranger)
    # Registered claims and late credits stay payable after the sweep; the vault ends empty.
    h.withdrawEscaped(sender=alice)
    h.withdrawEscaped(sender=bob)
    assert w.token.balanceOf(alice) == ALICE and w.token.balanceOf(bob) == BOB
    assert w.token.balanceOf(w.vault) == 0


def test_sweepResidual_one_second_early_reverts(
    late: Any, consts: Any, operator: Any, chain: Any, reverts: Any
) -> None:
    h = late.hatch
    allowed_at = h.frozenAt() + 2 * consts.CLAIM_WINDOW
    chain.pending_timestamp = allowed_at - 1
    with reverts(h.EscapeHatch_SweepTooEarly, allowedAt=allowed_at):
        h.sweepResidual(sender=operator)


def test_sweepResidual_before_freeze_reverts(
    escape_world: Any,
    consts: Any,
    alice: Any,
    bob: Any,
    stranger: Any,
    operator: Any,
    reverts: Any,
) -> None:
    tree, _ = _tree(consts, alice, bob, stranger)
    w = escape_world(tree, [(alice, 10 * USDC)], freeze=False)
    with reverts(w.hatch.EscapeHatch_NotFrozen):
        w.hatch.sweepResidual(sender=operator)


def test_sweepResidual_twice_reverts(
    late: Any, consts: Any, operator: Any, chain: Any, reverts: Any
) -> None:
    h = late.hatch
    chain.pending_timestamp = h.frozenAt() + 2 * consts.CLAIM_WINDOW
    h.sweepResidual(sender=operator)
    with reverts(h.EscapeHatch_AlreadySwept):
        h.sweepResidual(sender=operator)


def test_sweepResidual_not_operator_reverts(
    late: Any, consts: Any, stranger: Any, chain: Any, reverts: Any
) -> None:
    h = late.hatch
    chain.pending_timestamp = h.frozenAt() + 2 * consts.CLAIM_WINDOW
    with reverts(h.EscapeHatch_NotOperator, caller=stranger.address):
        h.sweepResidual(sender=stranger)


def test_sweepResidual_nothing_left_succeeds(
    escape_world: Any,
    consts: Any,
    alice: Any,
    bob: Any,
    stranger: Any,
    operator: Any,
    chain: Any,
) -> None:
    # Registered claims exceed the pool: the sweep takes 0, and still ends late escapes.
    tree, accounts = _tree(consts, alice, bob, stranger)
    w = escape_world(tree, [(alice, 200_000 * USDC)], claim_window=consts.CLAIM_WINDOW)
    _escape(w, consts, accounts[0], alice)
    chain.pending_timestamp = w.hatch.frozenAt() + 2 * consts.CLAIM_WINDOW
    before = w.token.balanceOf(operator)
    receipt = w.hatch.sweepResidual(sender=operator)
    assert receipt.events == [w.hatch.ResidualSwept(operator, 0)]
    assert w.token.balanceOf(operator) == before and w.hatch.swept()


# ---------------------------------------------------------------- withdrawEscapedTo


def test_withdrawEscapedTo_during_window_reverts(
    escape_world: Any,
    consts: Any,
    alice: Any,
    bob: Any,
    stranger: Any,
    chain: Any,
    reverts: Any,
) -> None:
    tree, accounts = _tree(consts, alice, bob, stranger)
    w = escape_world(tree, [(alice, 500_000 * USDC)], claim_window=consts.CLAIM_WINDOW)
    _escape(w, consts, accounts[0], alice)
    end = w.hatch.claimWindowEnd()
    chain.pending_timestamp = end - 1
    with reverts(w.hatch.EscapeHatch_ClaimWindowOpen, endsAt=end):
        w.hatch.withdrawEscapedTo(stranger, sender=alice)
    # At the window's end the same call pays the recipient.
    chain.pending_timestamp = end
    receipt = w.hatch.withdrawEscapedTo(stranger, sender=alice)
    assert receipt.events[-1] == w.hatch.EscapeWithdrawn(alice, stranger, ALICE)
    assert w.token.balanceOf(stranger) == ALICE


def test_withdrawEscapedTo_refund_during_window_succeeds(
    escape_world: Any,
    consts: Any,
    alice: Any,
    bob: Any,
    stranger: Any,
    chain: Any,
    reverts: Any,
) -> None:
    # bob's second deposit was never included: its refund is withdrawable to anyone at once,
    # while his registered claim waits for the window's end.
    tree, accounts = _tree(consts, alice, bob, stranger)
    w = escape_world(
        tree,
        [(alice, 500_000 * USDC), (bob, 7 * USDC)],
        deposit_cursor=1,
        claim_window=consts.CLAIM_WINDOW,
    )
    _escape(w, consts, accounts[1], bob)
    log = list(w.vault.Deposited.range(0, chain.blocks.head.number + 1))[1]
    w.hatch.refundDeposit(log.index, log.owner, log.amount, log.timestamp, sender=stranger)
    assert chain.blocks.head.timestamp < w.hatch.claimWindowEnd()
    receipt = w.hatch.withdrawEscapedTo(stranger, sender=bob)
    assert receipt.events[-1] == w.hatch.EscapeWithdrawn(bob, stranger, 7 * USDC)
    assert w.token.balanceOf(stranger) == 7 * USDC
    assert w.hatch.registeredOf(bob) == BOB and w.hatch.creditOf(bob) == 0
    with reverts(w.hatch.EscapeHatch_ClaimWindowOpen, endsAt=w.hatch.claimWindowEnd()):
        w.hatch.withdrawEscapedTo(stranger, sender=bob)


# ---------------------------------------------------------------- property


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    values=st.lists(st.integers(0, 10**15), min_size=1, max_size=4),
    pool=st.integers(1, 2 * 10**15),
    seed=st.integers(0, 2**32),
)
def test_withdrawEscaped_payouts_exact_within_pool_any_order_succeeds(
    escape_world: Any,
    consts: Any,
    accounts: Any,
    chain: Any,
    reverts: Any,
    values: list[int],
    pool: int,
    seed: int,
) -> None:
    owners = [accounts[2 + i] for i in range(len(values))]
    tree = consts.StateTree(
        [
            consts.make_market(0, 1_000),
            *(
                Account(i, o.address, v, 0)
                for i, (o, v) in enumerate(zip(owners, values, strict=True))
            ),
        ]
    )
    w = escape_world(tree, [(accounts[0], pool)], claim_window=consts.CLAIM_WINDOW)
    h = w.hatch
    assert h.pool() == pool
    for leaf in tree.leaves[1:]:
        h.escape(consts.leaf_fields(leaf), tree.proof(leaf), [], sender=accounts[0])
    total = sum(values)
    assert h.registeredTotal() == total
    consts.end_window(h, chain)
    # What each owner is owed, read before anyone withdraws: floor(v × pool / total), or v in full.
    owed = {o.address: int(h.owedTo(o)) for o in owners}
    for o, v in zip(owners, values, strict=True):
        assert owed[o.address] == (v if total <= pool else v * pool // total)
    assert sum(owed.values()) <= pool
    residual = int(h.residual())
    assert residual == pool - min(pool, total)
    # Withdrawals in a random order pay exactly that, whatever came before.
    order = list(owners)
    random.Random(seed).shuffle(order)
    for o in order:
        before = w.token.balanceOf(o)
        if owed[o.address] == 0:
            with reverts(h.EscapeHatch_NothingToWithdraw):
                h.withdrawEscaped(sender=o)
            continue
        h.withdrawEscaped(sender=o)
        assert w.token.balanceOf(o) - before == owed[o.address]
        assert h.residual() == residual  # payouts never touch the residual
    assert pool - w.token.balanceOf(w.vault) == sum(owed.values())
