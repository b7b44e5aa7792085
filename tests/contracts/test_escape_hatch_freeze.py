"""EscapeHatch.freeze: the two conditions (forced request overdue, liveness timeout) exactly at
their deadlines, what a freeze records (escape checkpoint, escape pool), and what it stops (posting,
requests, finality) or leaves alone (claims of finalized withdrawals)."""

from __future__ import annotations

from typing import Any

import pytest

FEE = 10**15
DEADLINE = 300
LIVENESS = 1800
WINDOW = 600
USDC = 10**6
CLAIM_WINDOW = 600
NEVER = 2**64 - 1
OVERDUE, LIVENESS_REASON = 1, 2


def _ts(chain: Any, receipt: Any) -> int:
    return int(chain.blocks[receipt.block_number].timestamp)


@pytest.fixture
def fresh(deploy_settlement: Any, usdc: Any) -> tuple[Any, Any, Any]:
    """(settlement, hatch, vault, checkpoints) deployed now: the liveness clock starts at this
    block."""
    settlement, vault, checkpoints = deploy_settlement(usdc)
    return settlement, checkpoints.hatch, vault, checkpoints


def _fund(usdc: Any, vault: Any, who: Any, amount: int) -> int:
    usdc.mint(who, amount, sender=who)
    usdc.approve(vault, amount, sender=who)
    return int(vault.deposit(who, amount, sender=who).return_value)


# ---------------------------------------------------------------- conditions


def test_freeze_nothing_due_reverts(fresh: Any, stranger: Any, reverts: Any) -> None:
    settlement, hatch, _, _ = fresh
    genesis_at = settlement.getCheckpoint(0).postedAt
    assert hatch.freezableAt() == (NEVER, genesis_at + LIVENESS)
    with reverts(
        hatch.EscapeHatch_FreezeNotAllowed, forcedAt=NEVER, livenessAt=genesis_at + LIVENESS
    ):
        hatch.freeze(sender=stranger)


def test_freeze_forced_request_one_second_early_reverts(
    fresh: Any, alice: Any, stranger: Any, chain: Any, reverts: Any
) -> None:
    settlement, hatch, _, _ = fresh
    ts = _ts(chain, hatch.requestForcedWithdrawal(1, 5, sender=alice, value=FEE))
    liveness_at = settlement.getCheckpoint(0).postedAt + LIVENESS
    assert hatch.freezableAt() == (ts + DEADLINE, liveness_at)
    chain.pending_timestamp = ts + DEADLINE - 1
    with reverts(
        hatch.EscapeHatch_FreezeNotAllowed, forcedAt=ts + DEADLINE, livenessAt=liveness_at
    ):
        hatch.freeze(sender=stranger)


def test_freeze_forced_request_at_deadline_succeeds(
    fresh: Any, alice: Any, stranger: Any, chain: Any
) -> None:
    _settlement, hatch, _, _ = fresh
    ts = _ts(chain, hatch.requestForcedWithdrawal(1, 5, sender=alice, value=FEE))
    chain.pending_timestamp = ts + DEADLINE
    receipt = hatch.freeze(sender=stranger)
    assert _ts(chain, receipt) == ts + DEADLINE
    assert receipt.events == [
        hatch.Frozen(stranger, OVERDUE, 0),
        hatch.EscapePoolFixed(0, ts + DEADLINE + CLAIM_WINDOW),
    ]
    assert hatch.isFrozen()
    assert hatch.frozenAt() == ts + DEADLINE
    assert hatch.frozenSeq() == 0


def test_freeze_liveness_one_second_early_reverts(
    fresh: Any, stranger: Any, chain: Any, reverts: Any
) -> None:
    settlement, hatch, _, _ = fresh
    at = settlement.getCheckpoint(0).postedAt + LIVENESS
    chain.pending_timestamp = at - 1
    with reverts(hatch.EscapeHatch_FreezeNotAllowed, forcedAt=NEVER, livenessAt=at):
        hatch.freeze(sender=stranger)


def test_freeze_liveness_at_timeout_succeeds(fresh: Any, stranger: Any, chain: Any) -> None:
    settlement, hatch, _, _ = fresh
    at = settlement.getCheckpoint(0).postedAt + LIVENESS
    chain.pending_timestamp = at
    receipt = hatch.freeze(sender=stranger)
    assert receipt.events[0] == hatch.Frozen(stranger, LIVENESS_REASON, 0)
    assert hatch.frozenAt() == at


def test_freeze_liveness_counts_from_latest_finalized_checkpoint_succeeds(
    fresh: Any, stranger: Any, chain: Any, reverts: Any
) -> None:
    settlement, hatch, _, checkpoints = fresh
    _, receipt = checkpoints.post_next()
    final_at = _ts(chain, receipt) + WINDOW
    assert settlement.finalizesAt(1) == final_at
    chain.pending_timestamp = final_at + LIVENESS - 1
    with reverts(hatch.EscapeHatch_FreezeNotAllowed, livenessAt=final_at + LIVENESS):
        hatch.freeze(sender=stranger)
    chain.pending_timestamp = final_at + LIVENESS
    hatch.freeze(sender=stranger)
    assert hatch.frozenSeq() == 1


def test_freeze_liveness_pending_checkpoint_does_not_count_succeeds(
    fresh: Any, stranger: Any, chain: Any
) -> None:
    # A checkpoint posted shortly before the timeout is still pending at it: the exchange freezes
    # and escapes use genesis, the last finalized root.
    settlement, hatch, _, checkpoints = fresh
    at = settlement.getCheckpoint(0).postedAt + LIVENESS
    chain.pending_timestamp = at - 100
    checkpoints.post_next()
    chain.pending_timestamp = at
    hatch.freeze(sender=stranger)
    assert hatch.frozenSeq() == 0
    assert settlement.latestSeq() == 1


def test_freeze_after_request_served_by_latest_checkpoint_reverts(
    fresh: Any, alice: Any, stranger: Any, chain: Any, reverts: Any
) -> None:
    # Served by the latest (still pending) checkpoint: no longer a reason to freeze.
    _settlement, hatch, _, checkpoints = fresh
    ts = _ts(chain, hatch.requestForcedWithdrawal(1, 5, sender=alice, value=FEE))
    checkpoints.post_next(forcedCursor=1)
    chain.pending_timestamp = ts + DEADLINE
    with reverts(hatch.EscapeHatch_FreezeNotAllowed, forcedAt=NEVER):
        hatch.freeze(sender=stranger)


def test_freeze_oldest_unserved_request_decides_succeeds(
    fresh: Any, alice: Any, bob: Any, stranger: Any, chain: Any, reverts: Any
) -> None:
    _settlement, hatch, _, checkpoints = fresh
    hatch.requestForcedWithdrawal(1, 5, sender=alice, value=FEE)
    chain.pending_timestamp = chain.blocks.head.timestamp + 100
    second = _ts(chain, hatch.requestForcedWithdrawal(2, 5, sender=bob, value=FEE))
    checkpoints.post_next(forcedCursor=1)  # serves the first only
    assert hatch.freezableAt()[0] == second + DEADLINE
    chain.pending_timestamp = second + DEADLINE - 1
    with reverts(hatch.EscapeHatch_FreezeNotAllowed, forcedAt=second + DEADLINE):
        hatch.freeze(sender=stranger)
    chain.pending_timestamp = second + DEADLINE
    hatch.freeze(sender=stranger)


# ---------------------------------------------------------------- after a freeze


@pytest.fixture
def frozen(fresh: Any, alice: Any, stranger: Any, chain: Any) -> tuple[Any, Any, Any]:
    """`fresh`, frozen through an overdue forced request."""
    _settlement, hatch, _, _ = fresh
    ts = _ts(chain, hatch.requestForcedWithdrawal(1, 5, sender=alice, value=FEE))
    chain.pending_timestamp = ts + DEADLINE
    hatch.freeze(sender=stranger)
    return fresh


def test_freeze_twice_reverts(frozen: Any, stranger: Any, chain: Any, reverts: Any) -> None:
    _settlement, hatch, _, _ = frozen
    chain.pending_timestamp = chain.blocks.head.timestamp + 10 * LIVENESS
    with reverts(hatch.EscapeHatch_Frozen):
        hatch.freeze(sender=stranger)


def test_postCheckpoint_after_freeze_reverts(frozen: Any, reverts: Any) -> None:
    settlement, _hatch, _, checkpoints = frozen
    with reverts(settlement.Settlement_Frozen):
        checkpoints.post(checkpoints.next_header(forcedCursor=1))


def test_requestForced_after_freeze_reverts(frozen: Any, bob: Any, reverts: Any) -> None:
    _settlement, hatch, _, _ = frozen
    with reverts(hatch.EscapeHatch_Frozen):
        hatch.requestForcedWithdrawal(2, 5, sender=bob, value=FEE)
    with reverts(hatch.EscapeHatch_Frozen):
        hatch.requestForcedExit(2, 0, sender=bob, value=FEE)


def test_freeze_stops_finality_succeeds(
    fresh: Any, alice: Any, bob: Any, stranger: Any, chain: Any, usdc: Any, reverts: Any
) -> None:
    settlement, hatch, vault, checkpoints = fresh
    _fund(usdc, vault, alice, 10 * USDC)
    ts = _ts(chain, hatch.requestForcedWithdrawal(1, 5, sender=bob, value=FEE))
    seq, w = checkpoints.post_withdrawals([(0, alice.address, 10 * USDC)])  # pending
    final_at = settlement.finalizesAt(seq)
    chain.pending_timestamp = ts + DEADLINE
    hatch.freeze(sender=stranger)
    assert ts + DEADLINE < final_at
    chain.mine(timestamp=final_at + 10 * WINDOW)
    assert not settlement.isFinalized(seq)
    assert settlement.lastFinalizedSeq() == 0
    assert hatch.frozenSeq() == 0
    with reverts(settlement.Settlement_NotFinalized, seq=seq, finalizesAt=final_at):
        settlement.claimWithdrawal(seq, 0, *w.leaves[0], w.proof(0), sender=alice)


def test_freeze_at_finality_second_includes_checkpoint_succeeds(
    fresh: Any, alice: Any, stranger: Any, chain: Any
) -> None:
    # The request is made so that its deadline is exactly checkpoint 1's finality: at that second
    # checkpoint 1 is final, so it is the escape checkpoint.
    settlement, hatch, _, checkpoints = fresh
    checkpoints.post_next()
    final_at = settlement.finalizesAt(1)
    chain.pending_timestamp = final_at - DEADLINE
    hatch.requestForcedWithdrawal(1, 5, sender=alice, value=FEE)
    chain.pending_timestamp = final_at
    hatch.freeze(sender=stranger)
    assert hatch.frozenSeq() == 1
    chain.mine(timestamp=final_at + 5 * WINDOW)
    assert settlement.isFinalized(1)
    assert settlement.lastFinalizedSeq() == 1


def test_claimWithdrawal_finalized_before_freeze_succeeds(
    fresh: Any, alice: Any, bob: Any, stranger: Any, chain: Any, usdc: Any
) -> None:
    settlement, hatch, vault, checkpoints = fresh
    _fund(usdc, vault, alice, 100 * USDC)
    seq, w = checkpoints.post_withdrawals([(0, alice.address, 30 * USDC)])
    checkpoints.finalize()
    ts = _ts(chain, hatch.requestForcedWithdrawal(1, 5, sender=bob, value=FEE))
    chain.pending_timestamp = ts + DEADLINE
    hatch.freeze(sender=stranger)
    assert hatch.frozenSeq() == seq
    before = usdc.balanceOf(alice)
    settlement.claimWithdrawal(seq, 0, *w.leaves[0], w.proof(0), sender=stranger)
    assert usdc.balanceOf(alice) == before + 30 * USDC
    assert settlement.withdrawalsClaimed() == 30 * USDC


# ---------------------------------------------------------------- the escape pool


def test_freeze_fixes_pool_net_of_withdrawals_and_refunds_succeeds(
    fresh: Any, alice: Any, bob: Any, stranger: Any, chain: Any, usdc: Any, consts: Any
) -> None:
    settlement, hatch, vault, checkpoints = fresh
    _fund(usdc, vault, alice, 600_000 * USDC)  # deposit 0, included
    _fund(usdc, vault, bob, 400_000 * USDC)  # deposit 1, never included
    w = consts.Withdrawals([(0, alice.address, 100_000 * USDC), (0, bob.address, 50_000 * USDC)])
    checkpoints.post_next(
        depositCursor=1,
        withdrawalsRoot=w.root,
        withdrawalCount=2,
        withdrawalTotal=150_000 * USDC,
    )
    checkpoints.finalize()
    settlement.claimWithdrawal(1, 0, *w.leaves[0], w.proof(0), sender=stranger)
    _fund(usdc, vault, bob, 5_000 * USDC)  # deposit 2, never included
    ts = _ts(chain, hatch.requestForcedWithdrawal(1, 5, sender=bob, value=FEE))
    chain.pending_timestamp = ts + DEADLINE
    receipt = hatch.freeze(sender=stranger)
    frozen_at = ts + DEADLINE
    assert hatch.frozenSeq() == 1
    # balance 905k - unclaimed finalized withdrawals 50k - refundable deposits 405k.
    pool = 905_000 * USDC - 50_000 * USDC - 405_000 * USDC
    assert receipt.events == [
        hatch.Frozen(stranger, OVERDUE, 1),
        hatch.EscapePoolFixed(pool, frozen_at + CLAIM_WINDOW),
    ]
    assert (hatch.pool(), hatch.registeredTotal(), hatch.claimWindowEnd()) == (
        pool,
        0,
        frozen_at + CLAIM_WINDOW,
    )
    assert settlement.cumulativeWithdrawalTotal(1) == 150_000 * USDC
    # The other finalized withdrawal is still claimable; the pool does not move.
    settlement.claimWithdrawal(1, 1, *w.leaves[1], w.proof(1), sender=stranger)
    assert hatch.pool() == pool
    assert usdc.balanceOf(vault) == pool + 405_000 * USDC


def test_freeze_pool_never_negative_succeeds(
    fresh: Any, alice: Any, stranger: Any, chain: Any, usdc: Any
) -> None:
    # Withdrawals committed beyond what the vault holds (an inconsistent checkpoint): pool 0.
    _settlement, hatch, vault, checkpoints = fresh
    _fund(usdc, vault, alice, 10 * USDC)
    checkpoints.post_next(depositCursor=1, withdrawalTotal=11 * USDC)
    checkpoints.finalize()
    ts = _ts(chain, hatch.requestForcedWithdrawal(1, 5, sender=alice, value=FEE))
    chain.pending_timestamp = ts + DEADLINE
    receipt = hatch.freeze(sender=stranger)
    assert receipt.events[1] == hatch.EscapePoolFixed(0, ts + DEADLINE + CLAIM_WINDOW)


def test_frozenSeq_before_freeze_reverts(fresh: Any, deployer: Any, reverts: Any) -> None:
    _settlement, hatch, _, _ = fresh
    with reverts(hatch.EscapeHatch_NotFrozen):
        hatch.frozenSeq.transact(sender=deployer)
