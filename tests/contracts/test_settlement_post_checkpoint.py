"""Settlement.postCheckpoint (one test per acceptance rule, in the documented order) and the
checkpoint views: getCheckpoint, latestSeq, isFinalized, finalizesAt, lastFinalizedSeq."""

from __future__ import annotations

from typing import Any

import pytest

from isoperp.hashing import keccak256
from isoperp.protocol.batch import batch_hash

MAX_BATCH = 131_072
MAX_RECORDS = 2**20


def _bytes32(tag: str) -> bytes:
    return keccak256(tag.encode())


# ---------------------------------------------------------------- success


def test_postCheckpoint_empty_batch_succeeds(
    checkpoints: Any, bonded: Any, chain: Any, consts: Any
) -> None:
    header, receipt = checkpoints.post_next()
    posted_at = chain.blocks[receipt.block_number].timestamp
    expected_hash = consts.header_hash(header)
    assert receipt.events == [
        bonded.CheckpointPosted(
            1, expected_hash, header["stateRoot"], header["withdrawalsRoot"], 0, posted_at + 600
        )
    ]
    cp = bonded.getCheckpoint(1)
    assert bytes(cp.checkpointHash) == expected_hash
    assert bytes(cp.stateRoot) == header["stateRoot"]
    assert bytes(cp.withdrawalsRoot) == header["withdrawalsRoot"]
    assert cp.withdrawalCount == 0
    assert (cp.depositCursor, cp.forcedCursor) == (0, 0)
    assert cp.timestamp == header["timestamp"]
    assert cp.postedAt == posted_at
    assert bonded.latestSeq() == 1
    assert bonded.finalizesAt(1) == posted_at + 600
    assert not bonded.isFinalized(1)


def test_postCheckpoint_chain_of_three_succeeds(checkpoints: Any, bonded: Any, consts: Any) -> None:
    previous = bytes(bonded.getCheckpoint(0).checkpointHash)
    for seq in (1, 2, 3):
        header, _ = checkpoints.post_next()
        assert header["seq"] == seq
        assert header["prevHash"] == previous
        previous = consts.header_hash(header)
        assert bytes(bonded.getCheckpoint(seq).checkpointHash) == previous
    assert bonded.latestSeq() == 3


def test_postCheckpoint_includes_deposits_succeeds(
    checkpoints: Any, bonded: Any, funded_vault: Any
) -> None:
    header, receipt = checkpoints.post_next(depositCursor=1)
    assert header["depositPrefixHash"] == bytes(funded_vault.depositPrefixHash(1))
    header, receipt = checkpoints.post_next(depositCursor=2)
    assert bonded.getCheckpoint(2).depositCursor == 2
    assert receipt.decode_logs(bonded.CheckpointPosted)[0].depositCursor == 2


def test_postCheckpoint_same_deposit_cursor_again_succeeds(
    checkpoints: Any, bonded: Any, funded_vault: Any
) -> None:
    checkpoints.post_next(depositCursor=2)
    checkpoints.post_next(depositCursor=2)
    assert bonded.getCheckpoint(2).depositCursor == 2


def test_postCheckpoint_max_batch_bytes_succeeds(checkpoints: Any, bonded: Any) -> None:
    batch = bytes([2]) + bytes(range(256)) * (MAX_BATCH // 256)
    batch = batch[:MAX_BATCH]
    _, receipt = checkpoints.post_next(batch)
    assert len(batch) == MAX_BATCH
    assert bonded.latestSeq() == 1
    assert receipt.gas_used < 2**24


@pytest.mark.parametrize("length", [4095, 4096, 4097, 3 * 4096 + 17])
def test_postCheckpoint_chunk_hash_of_multi_chunk_batch_succeeds(
    checkpoints: Any, bonded: Any, consts: Any, length: int
) -> None:
    batch = bytes([2]) + bytes((i * 7) % 251 for i in range(length - 1))
    header, _ = checkpoints.post_next(batch)
    assert header["batchHash"] == batch_hash(batch) != keccak256(batch)
    assert bytes(bonded.getCheckpoint(1).checkpointHash) == consts.header_hash(header)


def test_postCheckpoint_max_record_count_succeeds(checkpoints: Any, bonded: Any) -> None:
    checkpoints.post_next(bytes([2]) + MAX_RECORDS.to_bytes(4, "big"))
    assert bonded.latestSeq() == 1


def test_postCheckpoint_max_withdrawal_count_succeeds(checkpoints: Any, bonded: Any) -> None:
    # the header's uint32 count: at most 2^32 - 1 leaves of the depth-32 tree
    checkpoints.post_next(withdrawalCount=2**32 - 1)
    assert bonded.getCheckpoint(1).withdrawalCount == 2**32 - 1


def test_postCheckpoint_timestamp_equal_to_block_succeeds(
    checkpoints: Any, bonded: Any, chain: Any
) -> None:
    # The post's own block timestamp is the upper bound; set it so it is known in advance.
    at = chain.blocks.head.timestamp + 100
    chain.pending_timestamp = at
    checkpoints.post_next(timestamp=at)
    assert bonded.getCheckpoint(1).timestamp == at == bonded.getCheckpoint(1).postedAt


def test_postCheckpoint_by_bonded_operator_after_withdraw_to_minimum_succeeds(
    checkpoints: Any, bonded: Any, operator: Any
) -> None:
    bonded.postBond(sender=operator, value=10**18)
    bonded.withdrawBond(10**18, sender=operator)
    checkpoints.post_next()
    assert bonded.latestSeq() == 1


# ---------------------------------------------------------------- one revert per rule


def test_postCheckpoint_not_operator_reverts(
    checkpoints: Any, bonded: Any, stranger: Any, reverts: Any
) -> None:
    header = checkpoints.next_header()
    with reverts(bonded.Settlement_NotOperator, caller=stranger.address):
        checkpoints.post(header, sender=stranger)


def test_postCheckpoint_bond_too_low_reverts(
    unbonded_checkpoints: Any, settlement: Any, operator: Any, reverts: Any
) -> None:
    settlement.postBond(sender=operator, value=10**18 - 1)
    header = unbonded_checkpoints.next_header()
    with reverts(settlement.Settlement_BondTooLow, bond=10**18 - 1, minimum=10**18):
        unbonded_checkpoints.post(header)


@pytest.mark.parametrize("seq", [0, 2, 2**64 - 1])
def test_postCheckpoint_wrong_sequence_reverts(
    checkpoints: Any, bonded: Any, reverts: Any, seq: int
) -> None:
    with reverts(bonded.Settlement_WrongSequence, expected=1, got=seq):
        checkpoints.post(checkpoints.next_header(seq=seq))


def test_postCheckpoint_wrong_prev_hash_reverts(
    checkpoints: Any, bonded: Any, reverts: Any
) -> None:
    genesis_hash = bytes(bonded.getCheckpoint(0).checkpointHash)
    bad = _bytes32("not the genesis")
    with reverts(bonded.Settlement_WrongPrevHash, expected=genesis_hash, got=bad):
        checkpoints.post(checkpoints.next_header(prevHash=bad))


def test_postCheckpoint_deposit_cursor_beyond_queue_reverts(
    checkpoints: Any, bonded: Any, funded_vault: Any, reverts: Any
) -> None:
    header = checkpoints.next_header(depositCursor=2)
    header["depositCursor"] = 3
    with reverts(bonded.Settlement_DepositCursorOutOfRange, previous=0, got=3, queueLength=2):
        checkpoints.post(header)


def test_postCheckpoint_deposit_cursor_backwards_reverts(
    checkpoints: Any, bonded: Any, funded_vault: Any, reverts: Any
) -> None:
    checkpoints.post_next(depositCursor=2)
    with reverts(bonded.Settlement_DepositCursorOutOfRange, previous=2, got=1, queueLength=2):
        checkpoints.post(checkpoints.next_header(depositCursor=1))


def test_postCheckpoint_deposit_prefix_mismatch_reverts(
    checkpoints: Any, bonded: Any, funded_vault: Any, reverts: Any
) -> None:
    # The prefix hash of 1 deposit claimed for cursor 2: the operator skipped or altered a deposit.
    expected = bytes(funded_vault.depositPrefixHash(2))
    wrong = bytes(funded_vault.depositPrefixHash(1))
    header = checkpoints.next_header(depositCursor=2, depositPrefixHash=wrong)
    with reverts(bonded.Settlement_DepositPrefixMismatch, expected=expected, got=wrong):
        checkpoints.post(header)


def test_postCheckpoint_nonzero_prefix_at_cursor_zero_reverts(
    checkpoints: Any, bonded: Any, reverts: Any
) -> None:
    bad = _bytes32("prefix")
    with reverts(bonded.Settlement_DepositPrefixMismatch, expected=b"\x00" * 32, got=bad):
        checkpoints.post(checkpoints.next_header(depositPrefixHash=bad))


def test_postCheckpoint_forced_cursor_beyond_queue_reverts(
    checkpoints: Any, bonded: Any, reverts: Any
) -> None:
    with reverts(bonded.Settlement_ForcedCursorOutOfRange, previous=0, got=1, queueLength=0):
        checkpoints.post(checkpoints.next_header(forcedCursor=1))


def test_postCheckpoint_batch_too_large_reverts(
    checkpoints: Any, bonded: Any, reverts: Any
) -> None:
    batch = b"\x01" * (MAX_BATCH + 1)
    with reverts(bonded.Settlement_BatchTooLarge, length=MAX_BATCH + 1, maximum=MAX_BATCH):
        checkpoints.post(checkpoints.next_header(batch), batch)


def test_postCheckpoint_batch_length_mismatch_reverts(
    checkpoints: Any, bonded: Any, consts: Any, reverts: Any
) -> None:
    header = checkpoints.next_header(consts.EMPTY_BATCH)
    other = consts.EMPTY_BATCH + b"\x00"
    with reverts(bonded.Settlement_BatchLengthMismatch, length=len(other), batchLength=5):
        checkpoints.post(header, other)


def test_postCheckpoint_batch_hash_mismatch_reverts(
    checkpoints: Any, bonded: Any, consts: Any, reverts: Any
) -> None:
    header = checkpoints.next_header(consts.EMPTY_BATCH)
    other = consts.EMPTY_BATCH + b"\x01"  # other data (same version and count)
    header["batchLength"] = len(other)
    with reverts(
        bonded.Settlement_BatchHashMismatch, expected=batch_hash(other), got=header["batchHash"]
    ):
        checkpoints.post(header, other)


def test_postCheckpoint_plain_keccak_batch_hash_reverts(
    checkpoints: Any, bonded: Any, reverts: Any
) -> None:
    # v1's keccak256(batchData) is not the chunk hash (even for a single chunk)
    batch = bytes([2]) + b"\x00" * 4
    header = checkpoints.next_header(batch, batchHash=keccak256(batch))
    with reverts(
        bonded.Settlement_BatchHashMismatch, expected=batch_hash(batch), got=keccak256(batch)
    ):
        checkpoints.post(header, batch)


def test_postCheckpoint_too_many_records_reverts(
    checkpoints: Any, bonded: Any, reverts: Any
) -> None:
    batch = bytes([2]) + (MAX_RECORDS + 1).to_bytes(4, "big")  # the data's count agrees
    header = checkpoints.next_header(batch)
    assert header["recordCount"] == MAX_RECORDS + 1
    with reverts(bonded.Settlement_TooManyRecords, count=MAX_RECORDS + 1, maximum=MAX_RECORDS):
        checkpoints.post(header, batch)


def test_postCheckpoint_batch_shorter_than_its_header_reverts(
    checkpoints: Any, bonded: Any, reverts: Any
) -> None:
    for batch in (b"", b"\x02\x00\x00\x00"):
        header = checkpoints.next_header(batch)
        with reverts(bonded.Settlement_BatchTooShort, length=len(batch)):
            checkpoints.post(header, batch)


def test_postCheckpoint_batch_version_mismatch_reverts(
    checkpoints: Any, bonded: Any, reverts: Any
) -> None:
    batch = bytes([1]) + (0).to_bytes(4, "big")  # a version-1 batch
    header = checkpoints.next_header(batch)
    with reverts(bonded.Settlement_BatchVersionMismatch, expected=2, got=1):
        checkpoints.post(header, batch)


def test_postCheckpoint_record_count_mismatch_reverts(
    checkpoints: Any, bonded: Any, reverts: Any
) -> None:
    batch = bytes([2]) + (3).to_bytes(4, "big")
    header = checkpoints.next_header(batch, recordCount=1000)
    with reverts(bonded.Settlement_RecordCountMismatch, inData=3, inHeader=1000):
        checkpoints.post(header, batch)


def test_postCheckpoint_too_many_withdrawals_reverts(
    checkpoints: Any, bonded: Any, reverts: Any
) -> None:
    header = checkpoints.next_header(withdrawalCount=2**32 + 1)
    with reverts(bonded.Settlement_TooManyWithdrawals, count=2**32 + 1, maximum=2**32):
        checkpoints.post(header)


def test_postCheckpoint_withdrawal_count_shrinks_reverts(
    checkpoints: Any, bonded: Any, reverts: Any
) -> None:
    checkpoints.post_next(withdrawalCount=3, withdrawalTotal=30)
    header = checkpoints.next_header(withdrawalCount=2, withdrawalTotal=30)
    with reverts(
        bonded.Settlement_WithdrawalsShrank, previousCount=3, count=2, previousTotal=30, total=30
    ):
        checkpoints.post(header)


def test_postCheckpoint_withdrawal_total_shrinks_reverts(
    checkpoints: Any, bonded: Any, reverts: Any
) -> None:
    checkpoints.post_next(withdrawalCount=3, withdrawalTotal=30)
    header = checkpoints.next_header(withdrawalCount=3, withdrawalTotal=29)
    with reverts(
        bonded.Settlement_WithdrawalsShrank, previousCount=3, count=3, previousTotal=30, total=29
    ):
        checkpoints.post(header)


def test_postCheckpoint_timestamp_before_previous_reverts(
    checkpoints: Any, bonded: Any, chain: Any, reverts: Any
) -> None:
    first, _ = checkpoints.post_next()
    chain.mine(timestamp=chain.blocks.head.timestamp + 10)
    header = checkpoints.next_header(timestamp=first["timestamp"] - 1)
    with reverts(
        bonded.Settlement_BadTimestamp,
        timestamp=first["timestamp"] - 1,
        previous=first["timestamp"],
    ):
        checkpoints.post(header)


def test_postCheckpoint_timestamp_in_future_reverts(
    checkpoints: Any, bonded: Any, chain: Any, reverts: Any
) -> None:
    at = chain.blocks.head.timestamp + 50
    chain.pending_timestamp = at
    header = checkpoints.next_header(timestamp=at + 1)
    with reverts(bonded.Settlement_BadTimestamp, timestamp=at + 1, previous=0, blockTimestamp=at):
        checkpoints.post(header)


def test_postCheckpoint_rules_apply_in_documented_order_reverts(
    checkpoints: Any, bonded: Any, stranger: Any, reverts: Any, consts: Any
) -> None:
    # A header that breaks every rule; fixing them one by one reveals the next error in order.
    good = checkpoints.next_header()
    batch = b"\x01" * (MAX_BATCH + 1)
    header = dict(good)
    header.update(
        seq=9,
        prevHash=_bytes32("x"),
        depositCursor=5,
        forcedCursor=5,
        batchLength=7,
        batchHash=_bytes32("y"),
        recordCount=MAX_RECORDS + 1,
        withdrawalCount=2**33,
        timestamp=2**63,
    )
    steps: list[tuple[Any, dict[str, Any]]] = [
        (bonded.Settlement_WrongSequence, {"seq": good["seq"]}),
        (bonded.Settlement_WrongPrevHash, {"prevHash": good["prevHash"]}),
        (bonded.Settlement_DepositCursorOutOfRange, {"depositCursor": 0}),
        (bonded.Settlement_DepositPrefixMismatch, {"depositPrefixHash": consts.ZERO32}),
        (bonded.Settlement_ForcedCursorOutOfRange, {"forcedCursor": 0}),
        (bonded.Settlement_BatchTooLarge, {}),
        (bonded.Settlement_BatchLengthMismatch, {"batchLength": good["batchLength"]}),
        (bonded.Settlement_TooManyRecords, {"recordCount": 1}),
        (bonded.Settlement_RecordCountMismatch, {"recordCount": 0}),
        (bonded.Settlement_BatchHashMismatch, {"batchHash": good["batchHash"]}),
        (bonded.Settlement_TooManyWithdrawals, {"withdrawalCount": 0}),
        (bonded.Settlement_BadTimestamp, {"timestamp": good["timestamp"]}),
    ]
    header["depositPrefixHash"] = _bytes32("z")
    with reverts(bonded.Settlement_NotOperator):
        checkpoints.post(header, batch, sender=stranger)
    for error, fix in steps:
        with reverts(error):
            checkpoints.post(header, batch)
        header.update(fix)
        if error is bonded.Settlement_BatchTooLarge:
            batch = consts.EMPTY_BATCH
    checkpoints.post(header, batch)
    assert bonded.latestSeq() == 1


# ---------------------------------------------------------------- views


def test_getCheckpoint_unknown_seq_reverts(bonded: Any, deployer: Any, reverts: Any) -> None:
    with reverts(bonded.Settlement_UnknownCheckpoint, seq=1):
        bonded.getCheckpoint.transact(1, sender=deployer)


def test_finalizesAt_unknown_seq_reverts(bonded: Any, deployer: Any, reverts: Any) -> None:
    with reverts(bonded.Settlement_UnknownCheckpoint, seq=7):
        bonded.finalizesAt.transact(7, sender=deployer)


def test_isFinalized_unknown_seq_is_false_succeeds(bonded: Any) -> None:
    assert not bonded.isFinalized(1)
    assert not bonded.isFinalized(2**64 - 1)


def test_isFinalized_exactly_at_window_end_succeeds(
    checkpoints: Any, bonded: Any, chain: Any
) -> None:
    _, receipt = checkpoints.post_next()
    posted_at = chain.blocks[receipt.block_number].timestamp
    chain.mine(timestamp=posted_at + 599)
    assert not bonded.isFinalized(1)
    assert bonded.lastFinalizedSeq() == 0
    chain.mine(timestamp=posted_at + 600)
    assert bonded.isFinalized(1)
    assert bonded.lastFinalizedSeq() == 1


def test_lastFinalizedSeq_tracks_window_over_many_checkpoints_succeeds(
    checkpoints: Any, bonded: Any, chain: Any
) -> None:
    posted = {}
    for _ in range(7):
        chain.mine(timestamp=chain.blocks.head.timestamp + 100)
        header, receipt = checkpoints.post_next()
        posted[header["seq"]] = chain.blocks[receipt.block_number].timestamp
    start = chain.blocks.head.timestamp
    for now in range(start, start + 1400, 50):
        if now > chain.blocks.head.timestamp:
            chain.mine(timestamp=now)
        expected = max([0, *[s for s, t in posted.items() if t + 600 <= now]])
        assert bonded.lastFinalizedSeq() == expected, now
        assert all(bonded.isFinalized(s) == (s <= expected) for s in range(8))


def test_latestSeq_only_genesis_succeeds(bonded: Any) -> None:
    assert bonded.latestSeq() == 0


def test_isClaimed_fresh_checkpoint_is_false_succeeds(checkpoints: Any, bonded: Any) -> None:
    checkpoints.post_next(withdrawalCount=3)
    assert not any(bonded.isClaimed(i) for i in range(3))


def test_postCheckpoint_stores_cumulative_withdrawal_fields_succeeds(
    checkpoints: Any, bonded: Any
) -> None:
    # the header's withdrawal fields are the exchange leaf's, cumulative: stored as they are
    totals = [5, 5, 2**100, 2**100 + 7]
    for i, total in enumerate(totals):
        checkpoints.post_next(withdrawalTotal=total, withdrawalCount=i + 1)
    for seq in range(1, len(totals) + 1):
        cp = bonded.getCheckpoint(seq)
        assert (cp.withdrawalTotal, cp.withdrawalCount) == (totals[seq - 1], seq)
        assert bonded.cumulativeWithdrawalTotal(seq) == totals[seq - 1]
    assert bonded.cumulativeWithdrawalTotal(0) == 0


def test_cumulativeWithdrawalTotal_unknown_checkpoint_reverts(
    checkpoints: Any, bonded: Any, reverts: Any
) -> None:
    checkpoints.post_next(withdrawalTotal=9)
    with reverts(bonded.Settlement_UnknownCheckpoint, seq=2):
        bonded.cumulativeWithdrawalTotal.transact(2, sender=checkpoints.operator)
