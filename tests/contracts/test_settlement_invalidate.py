"""Settlement.invalidateFrom: only the dispute contract (here a plain account, `disputer`), only a
pending checkpoint, O(1) however many follow; the chain then continues from seq - 1, claims against
invalidated checkpoints fail, and forced requests / deposits served only by invalidated checkpoints
are unserved again with their original deadlines (the hatch reads the latest checkpoint)."""

from __future__ import annotations

from typing import Any

import pytest

FEE = 10**15
DEADLINE = 300
WINDOW = 600
USDC = 10**6
NEVER = 2**64 - 1


def _ts(chain: Any, receipt: Any) -> int:
    return int(chain.blocks[receipt.block_number].timestamp)


def _post(checkpoints: Any, count: int) -> list[dict[str, Any]]:
    return [checkpoints.post_next()[0] for _ in range(count)]


@pytest.fixture
def fresh(deploy_settlement: Any, usdc: Any) -> tuple[Any, Any]:
    """(settlement, checkpoints) of a bonded Settlement deployed now, `disputes` = `disputer`."""
    settlement, _, checkpoints = deploy_settlement(usdc)
    return settlement, checkpoints


# ---------------------------------------------------------------- success


def test_invalidateFrom_latest_succeeds(checkpoints: Any, disputer: Any, reverts: Any) -> None:
    settlement = checkpoints.settlement
    _post(checkpoints, 2)
    receipt = settlement.invalidateFrom(2, sender=disputer)
    assert receipt.events == [settlement.CheckpointsInvalidated(2, 2)]
    assert settlement.latestSeq() == 1
    assert not settlement.isFinalized(2)
    with reverts(settlement.Settlement_UnknownCheckpoint, seq=2):
        settlement.finalizesAt.transact(2, sender=disputer)


def test_invalidateFrom_drops_every_later_checkpoint_succeeds(
    checkpoints: Any, disputer: Any, reverts: Any
) -> None:
    settlement = checkpoints.settlement
    _post(checkpoints, 5)
    receipt = settlement.invalidateFrom(3, sender=disputer)
    assert receipt.events == [settlement.CheckpointsInvalidated(3, 5)]
    assert settlement.latestSeq() == 2
    for seq in (3, 4, 5):
        assert not settlement.isFinalized(seq)
        with reverts(settlement.Settlement_UnknownCheckpoint, seq=seq):
            settlement.getCheckpoint.transact(seq, sender=disputer)
    assert settlement.getCheckpoint(2).postedAt > 0  # what stays is untouched


def test_invalidateFrom_one_second_before_finality_succeeds(
    checkpoints: Any, disputer: Any, chain: Any
) -> None:
    settlement = checkpoints.settlement
    checkpoints.post_next()
    chain.pending_timestamp = settlement.finalizesAt(1) - 1
    settlement.invalidateFrom(1, sender=disputer)
    assert settlement.latestSeq() == 0
    assert settlement.lastFinalizedSeq() == 0


def test_invalidateFrom_after_freeze_pending_checkpoint_succeeds(
    checkpoints: Any, disputer: Any, stranger: Any, chain: Any, consts: Any
) -> None:
    """After a freeze the Settlement's clock stops: a checkpoint pending at the freeze stays
    disputable after its nominal window (it never finalizes), and the escape checkpoint (final at
    the freeze) is not affected."""
    settlement = checkpoints.settlement
    checkpoints.post_next()
    consts.freeze_now(settlement, stranger, chain)
    chain.pending_timestamp = settlement.finalizesAt(1) + WINDOW
    settlement.invalidateFrom(1, sender=disputer)
    assert settlement.latestSeq() == 0
    assert consts.hatch_of(settlement).frozenSeq() == 0


def test_invalidateFrom_gas_independent_of_later_checkpoints_succeeds(
    deploy_settlement: Any, usdc: Any, disputer: Any
) -> None:
    """O(1): invalidating checkpoint 2 with 1 or with 20 checkpoints after it costs the same."""
    gas = {}
    for later in (1, 20):
        settlement, _, checkpoints = deploy_settlement(usdc)
        _post(checkpoints, 2 + later)
        receipt = settlement.invalidateFrom(2, sender=disputer)
        assert receipt.events == [settlement.CheckpointsInvalidated(2, 2 + later)]
        assert settlement.latestSeq() == 1
        gas[later] = receipt.gas_used
    assert abs(gas[1] - gas[20]) <= 200, gas


# ---------------------------------------------------------------- reverts


@pytest.mark.parametrize("who", ["operator", "stranger", "deployer"])
def test_invalidateFrom_not_disputes_reverts(
    checkpoints: Any, who: str, request: Any, reverts: Any
) -> None:
    caller = request.getfixturevalue(who)
    settlement = checkpoints.settlement
    checkpoints.post_next()
    with reverts(settlement.Settlement_NotDisputes, caller=caller.address):
        settlement.invalidateFrom(1, sender=caller)
    assert settlement.latestSeq() == 1


def test_invalidateFrom_unknown_checkpoint_reverts(
    checkpoints: Any, disputer: Any, reverts: Any
) -> None:
    settlement = checkpoints.settlement
    checkpoints.post_next()
    with reverts(settlement.Settlement_UnknownCheckpoint, seq=2):
        settlement.invalidateFrom(2, sender=disputer)


def test_invalidateFrom_already_invalidated_reverts(
    checkpoints: Any, disputer: Any, reverts: Any
) -> None:
    settlement = checkpoints.settlement
    _post(checkpoints, 3)
    settlement.invalidateFrom(2, sender=disputer)
    for seq in (2, 3):
        with reverts(settlement.Settlement_UnknownCheckpoint, seq=seq):
            settlement.invalidateFrom(seq, sender=disputer)


def test_invalidateFrom_genesis_reverts(checkpoints: Any, disputer: Any, reverts: Any) -> None:
    settlement = checkpoints.settlement
    checkpoints.post_next()
    genesis_at = settlement.finalizesAt(0)
    with reverts(settlement.Settlement_CheckpointFinal, seq=0, finalizedAt=genesis_at):
        settlement.invalidateFrom(0, sender=disputer)


def test_invalidateFrom_final_checkpoint_reverts(
    checkpoints: Any, disputer: Any, chain: Any, reverts: Any
) -> None:
    """At exactly its finality time a checkpoint can no longer be undone, nor can it once a later
    one is pending."""
    settlement = checkpoints.settlement
    checkpoints.post_next()
    final_at = settlement.finalizesAt(1)
    chain.pending_timestamp = final_at
    checkpoints.post_next()
    with reverts(settlement.Settlement_CheckpointFinal, seq=1, finalizedAt=final_at):
        settlement.invalidateFrom(1, sender=disputer)
    assert settlement.latestSeq() == 2


# ---------------------------------------------------------------- the chain afterwards


def test_postCheckpoint_after_invalidation_chains_onto_previous_succeeds(
    checkpoints: Any, disputer: Any, reverts: Any, consts: Any
) -> None:
    settlement = checkpoints.settlement
    old = _post(checkpoints, 3)
    settlement.invalidateFrom(2, sender=disputer)
    # The old numbering and the invalidated chain are refused (rules 3 and 4).
    stale = checkpoints.next_header(seq=4, prevHash=consts.header_hash(old[2]))
    with reverts(settlement.Settlement_WrongSequence, expected=2, got=4):
        checkpoints.post(stale)
    onto_invalidated = checkpoints.next_header(prevHash=consts.header_hash(old[1]))
    expected_prev = consts.header_hash(old[0])
    with reverts(
        settlement.Settlement_WrongPrevHash,
        expected=expected_prev,
        got=consts.header_hash(old[1]),
    ):
        checkpoints.post(onto_invalidated)
    # The next post reuses seq 2 and chains onto checkpoint 1.
    header = checkpoints.next_header(stateRoot=b"\x42" * 32)
    assert header["seq"] == 2 and header["prevHash"] == expected_prev
    receipt = checkpoints.post(header)
    assert [e.event_name for e in receipt.events] == ["CheckpointPosted"]
    assert settlement.latestSeq() == 2
    cp = settlement.getCheckpoint(2)
    assert bytes(cp.checkpointHash) == consts.header_hash(header) != consts.header_hash(old[1])
    assert bytes(cp.stateRoot) == b"\x42" * 32
    checkpoints.post_next()
    assert settlement.latestSeq() == 3


def test_lastFinalizedSeq_after_invalidation_and_reposts_succeeds(
    checkpoints: Any, disputer: Any, chain: Any
) -> None:
    """Finality stays a prefix across an invalidation: re-posted checkpoints finalize in order."""
    settlement = checkpoints.settlement
    checkpoints.post_next()
    checkpoints.finalize()
    _post(checkpoints, 3)
    settlement.invalidateFrom(2, sender=disputer)
    assert settlement.lastFinalizedSeq() == 1
    checkpoints.post_next()  # the new 2
    assert settlement.lastFinalizedSeq() == 1
    chain.pending_timestamp = settlement.finalizesAt(2)
    checkpoints.post_next()  # the new 3, pending
    assert settlement.lastFinalizedSeq() == 2
    assert settlement.isFinalized(2) and not settlement.isFinalized(3)


def test_claimWithdrawal_invalidated_checkpoint_reverts(
    checkpoints: Any, disputer: Any, alice: Any, stranger: Any, funded_vault: Any, reverts: Any
) -> None:
    """A withdrawal proven only by an invalidated checkpoint is unknown, even after the window the
    checkpoint would have needed; the re-posted checkpoint under the same seq decides instead."""
    settlement = checkpoints.settlement
    leaves = [(0, alice.address, 5 * USDC)]
    seq, withdrawals = checkpoints.post_withdrawals(leaves)
    settlement.invalidateFrom(seq, sender=disputer)
    checkpoints.finalize()
    with reverts(settlement.Settlement_UnknownCheckpoint, seq=seq):
        settlement.claimWithdrawal(
            seq, 0, 0, alice.address, 5 * USDC, withdrawals.proof(0), sender=stranger
        )
    # Re-posted without that withdrawal: the index is beyond the new checkpoint's count.
    checkpoints.post_next()
    checkpoints.finalize()
    with reverts(settlement.Settlement_WithdrawalIndexOutOfRange, index=0, count=0):
        settlement.claimWithdrawal(
            seq, 0, 0, alice.address, 5 * USDC, withdrawals.proof(0), sender=stranger
        )


# ---------------------------------------------------------------- the hatch afterwards


def test_invalidateFrom_reopens_served_forced_request_succeeds(
    fresh: Any, disputer: Any, alice: Any, stranger: Any, chain: Any, reverts: Any
) -> None:
    """A forced request served only by an invalidated checkpoint is unserved again with its
    original time: freeze() is refused one second before its original deadline and allowed at it."""
    settlement, checkpoints = fresh
    hatch = checkpoints.hatch
    requested = _ts(chain, hatch.requestForcedWithdrawal(1, 5, sender=alice, value=FEE))
    deadline = requested + DEADLINE
    checkpoints.post_next(forcedCursor=1)  # serves it
    forced_at, liveness_at = hatch.freezableAt()
    assert forced_at == NEVER
    settlement.invalidateFrom(1, sender=disputer)
    assert hatch.freezableAt() == (deadline, liveness_at)
    chain.pending_timestamp = deadline - 1
    with reverts(hatch.EscapeHatch_FreezeNotAllowed, forcedAt=deadline, livenessAt=liveness_at):
        hatch.freeze(sender=stranger)
    chain.pending_timestamp = deadline
    receipt = hatch.freeze(sender=stranger)
    assert receipt.events[0] == hatch.Frozen(stranger, 1, 0)
    assert hatch.frozenAt() == deadline


def test_invalidateFrom_reopens_served_forced_request_for_repost_succeeds(
    fresh: Any, disputer: Any, alice: Any, chain: Any, reverts: Any
) -> None:
    """Post rule 9 sees the reopened request too: past its original deadline, a re-post that does
    not serve it is refused."""
    settlement, checkpoints = fresh
    hatch = checkpoints.hatch
    requested = _ts(chain, hatch.requestForcedWithdrawal(1, 5, sender=alice, value=FEE))
    checkpoints.post_next(forcedCursor=1)
    settlement.invalidateFrom(1, sender=disputer)
    chain.pending_timestamp = requested + DEADLINE
    with reverts(
        settlement.Settlement_ForcedRequestOverdue, index=0, deadline=requested + DEADLINE
    ):
        checkpoints.post_next()
    checkpoints.post_next(forcedCursor=1)  # serving it is still accepted
    assert settlement.latestSeq() == 1


def test_invalidateFrom_reopens_included_deposit_succeeds(
    fresh: Any, disputer: Any, alice: Any, stranger: Any, usdc: Any, chain: Any, consts: Any,
    reverts: Any,
) -> None:
    """A deposit included only by an invalidated checkpoint is pending again with its original
    time: freezeForDeposit works at its original deadline."""
    settlement, checkpoints = fresh
    hatch = checkpoints.hatch
    index = consts.fund_and_deposit(usdc, checkpoints.vault, alice, 7 * USDC)
    deposited = int(chain.blocks.head.timestamp)
    checkpoints.post_next(depositCursor=1)
    with reverts(hatch.EscapeHatch_NoPendingDeposit, cursor=1):
        hatch.freezeForDeposit(alice, 7 * USDC, deposited, sender=stranger)
    settlement.invalidateFrom(1, sender=disputer)
    chain.pending_timestamp = deposited + DEADLINE
    receipt = hatch.freezeForDeposit(alice, 7 * USDC, deposited, sender=stranger)
    assert index == 0
    assert receipt.events[0] == hatch.Frozen(stranger, 3, 0)
