"""EscapeHatch forced-request queue: requestForcedWithdrawal / requestForcedExit (fee, ids, one
pending request per requester and key, prefix-hash chain), its views, and the postCheckpoint rules
that hold the operator to it (prefix hash, deadline)."""

from __future__ import annotations

from typing import Any

from eth_abi import encode

from isoperp.hashing import keccak256

FEE = 10**15
DEADLINE = 300
WITHDRAWAL, EXIT = 1, 2
ZERO32 = b"\x00" * 32


def forced_prefix(
    prev: bytes,
    index: int,
    kind: int,
    requester: str,
    account_id: int,
    market_id: int,
    amount: int,
    timestamp: int,
) -> bytes:
    """r_{i+1} = keccak256(abi.encode(r_i, uint64 index, uint8 kind, address requester,
    uint32 accountId, uint16 marketId, uint128 amount, uint64 timestamp))."""
    return keccak256(
        encode(
            ["bytes32", "uint64", "uint8", "address", "uint32", "uint16", "uint128", "uint64"],
            [prev, index, kind, requester, account_id, market_id, amount, timestamp],
        )
    )


def _ts(chain: Any, receipt: Any) -> int:
    return int(chain.blocks[receipt.block_number].timestamp)


def test_constants_mirror_conftest_succeeds(consts: Any) -> None:
    assert (FEE, DEADLINE) == (consts.FORCED_FEE, consts.FORCED_DEADLINE)


# ---------------------------------------------------------------- requestForcedWithdrawal


def test_requestForcedWithdrawal_queues_entry_succeeds(
    bonded: Any, hatch: Any, alice: Any, chain: Any
) -> None:
    bond_before = bonded.bond()
    fees_before = hatch.forcedFees()
    receipt = hatch.requestForcedWithdrawal(7, 123, sender=alice, value=FEE)
    ts = _ts(chain, receipt)
    r1 = forced_prefix(ZERO32, 0, WITHDRAWAL, alice.address, 7, 0, 123, ts)
    assert receipt.events == [hatch.ForcedRequested(0, WITHDRAWAL, alice, 7, 0, 123, ts, r1)]
    assert receipt.return_value == 0
    assert hatch.forcedRequestCount() == 1
    assert bytes(hatch.forcedPrefixHash(0)) == ZERO32
    assert bytes(hatch.forcedPrefixHash(1)) == r1
    assert hatch.forcedRequestedAt(0) == ts
    # The fee accrues in the hatch for the operator; the bond is untouched.
    assert hatch.forcedFees() == fees_before + FEE
    assert bonded.bond() == bond_before


def test_requestForcedExit_queues_entry_succeeds(
    bonded: Any, hatch: Any, alice: Any, chain: Any
) -> None:
    receipt = hatch.requestForcedExit(7, 63, sender=alice, value=FEE)
    ts = _ts(chain, receipt)
    r1 = forced_prefix(ZERO32, 0, EXIT, alice.address, 7, 63, 0, ts)
    assert receipt.events == [hatch.ForcedRequested(0, EXIT, alice, 7, 63, 0, ts, r1)]
    assert bytes(hatch.forcedPrefixHash(1)) == r1


def test_forced_queue_chain_matches_prefix_spec_succeeds(
    bonded: Any, hatch: Any, alice: Any, bob: Any, stranger: Any, chain: Any
) -> None:
    requests = [
        (alice, WITHDRAWAL, 1, 0, 10),
        (bob, EXIT, 2, 1, 0),
        (stranger, WITHDRAWAL, 1, 0, 2**128 - 1),  # a stranger's request for alice's account
        (alice, EXIT, 1, 0, 0),  # same account, other kind
        (alice, EXIT, 1, 5, 0),  # other market
        (alice, WITHDRAWAL, 2, 0, 1),  # other account
    ]
    expected = [ZERO32]
    for i, (who, kind, account_id, market_id, amount) in enumerate(requests):
        if kind == WITHDRAWAL:
            receipt = hatch.requestForcedWithdrawal(account_id, amount, sender=who, value=FEE)
        else:
            receipt = hatch.requestForcedExit(account_id, market_id, sender=who, value=FEE)
        assert receipt.return_value == i
        ts = _ts(chain, receipt)
        expected.append(
            forced_prefix(expected[-1], i, kind, who.address, account_id, market_id, amount, ts)
        )
        assert hatch.forcedRequestedAt(i) == ts
    assert hatch.forcedRequestCount() == len(requests)
    assert [bytes(hatch.forcedPrefixHash(c)) for c in range(len(requests) + 1)] == expected


def test_requestForcedWithdrawal_zero_fee_deployment_succeeds(
    project: Any, deployer: Any, usdc: Any, operator: Any, oracle: Any, alice: Any, consts: Any
) -> None:
    args = consts.settlement_args(usdc, operator, oracle, forcedRequestFee=0)
    settlement = deployer.deploy(project.Settlement, *args)
    hatch = consts.hatch_of(settlement)
    hatch.requestForcedWithdrawal(1, 1, sender=alice)
    assert hatch.forcedRequestCount() == 1
    assert hatch.forcedFees() == 0


def test_withdrawForcedFees_pays_operator_succeeds(
    hatch: Any, alice: Any, bob: Any, operator: Any, stranger: Any
) -> None:
    hatch.requestForcedWithdrawal(1, 1, sender=alice, value=FEE)
    hatch.requestForcedExit(2, 0, sender=bob, value=FEE)
    before = stranger.balance
    receipt = hatch.withdrawForcedFees(stranger, sender=operator)
    assert receipt.events == [hatch.ForcedFeesWithdrawn(stranger, 2 * FEE)]
    assert stranger.balance == before + 2 * FEE
    assert hatch.forcedFees() == 0


def test_withdrawForcedFees_not_operator_reverts(
    hatch: Any, alice: Any, stranger: Any, reverts: Any
) -> None:
    hatch.requestForcedWithdrawal(1, 1, sender=alice, value=FEE)
    with reverts(hatch.EscapeHatch_NotOperator, caller=stranger.address):
        hatch.withdrawForcedFees(stranger, sender=stranger)


def test_withdrawForcedFees_nothing_reverts(hatch: Any, operator: Any, reverts: Any) -> None:
    with reverts(hatch.EscapeHatch_NothingToWithdraw):
        hatch.withdrawForcedFees(operator, sender=operator)


def test_withdrawForcedFees_zero_recipient_reverts(
    hatch: Any, alice: Any, operator: Any, reverts: Any
) -> None:
    hatch.requestForcedWithdrawal(1, 1, sender=alice, value=FEE)
    with reverts(hatch.EscapeHatch_ZeroRecipient):
        hatch.withdrawForcedFees("0x" + "00" * 20, sender=operator)


def test_withdrawForcedFees_refusing_recipient_reverts(
    hatch: Any, usdc: Any, alice: Any, operator: Any, reverts: Any
) -> None:
    # MockUSDC has no payable fallback: sending it ETH fails, and the fees stay.
    hatch.requestForcedWithdrawal(1, 1, sender=alice, value=FEE)
    with reverts(hatch.EscapeHatch_TransferFailed):
        hatch.withdrawForcedFees(usdc, sender=operator)
    assert hatch.forcedFees() == FEE


def test_requestForcedWithdrawal_wrong_fee_reverts(
    bonded: Any, hatch: Any, alice: Any, reverts: Any
) -> None:
    for paid in (0, FEE - 1, FEE + 1):
        with reverts(hatch.EscapeHatch_WrongFee, paid=paid, required=FEE):
            hatch.requestForcedWithdrawal(1, 1, sender=alice, value=paid)
    with reverts(hatch.EscapeHatch_WrongFee, paid=0, required=FEE):
        hatch.requestForcedExit(1, 0, sender=alice)


def test_requestForcedWithdrawal_zero_amount_reverts(
    bonded: Any, hatch: Any, alice: Any, reverts: Any
) -> None:
    with reverts(hatch.EscapeHatch_ZeroAmount):
        hatch.requestForcedWithdrawal(1, 0, sender=alice, value=FEE)


def test_requestForcedWithdrawal_account_out_of_range_reverts(
    bonded: Any, hatch: Any, alice: Any, reverts: Any
) -> None:
    with reverts(hatch.LeafLib_AccountOutOfRange, accountId=2**24, limit=2**24):
        hatch.requestForcedWithdrawal(2**24, 1, sender=alice, value=FEE)


def test_requestForcedExit_ids_out_of_range_reverts(
    bonded: Any, hatch: Any, alice: Any, reverts: Any
) -> None:
    with reverts(hatch.LeafLib_MarketOutOfRange, marketId=64, limit=64):
        hatch.requestForcedExit(1, 64, sender=alice, value=FEE)
    with reverts(hatch.LeafLib_AccountOutOfRange, accountId=2**32 - 1, limit=2**24):
        hatch.requestForcedExit(2**32 - 1, 0, sender=alice, value=FEE)


def test_requestForcedWithdrawal_pending_same_key_reverts(
    bonded: Any, hatch: Any, alice: Any, reverts: Any
) -> None:
    hatch.requestForcedWithdrawal(1, 5, sender=alice, value=FEE)
    # A different amount is the same key: one pending withdrawal per (requester, account).
    with reverts(hatch.EscapeHatch_ForcedRequestPending, index=0):
        hatch.requestForcedWithdrawal(1, 6, sender=alice, value=FEE)


def test_requestForcedExit_pending_same_market_reverts(
    bonded: Any, hatch: Any, alice: Any, reverts: Any
) -> None:
    hatch.requestForcedWithdrawal(1, 5, sender=alice, value=FEE)
    hatch.requestForcedExit(1, 3, sender=alice, value=FEE)
    with reverts(hatch.EscapeHatch_ForcedRequestPending, index=1):
        hatch.requestForcedExit(1, 3, sender=alice, value=FEE)


def test_requestForced_stranger_does_not_block_owner_succeeds(
    bonded: Any, hatch: Any, alice: Any, stranger: Any
) -> None:
    # Requests are keyed by requester: a stranger's (invalid) request for alice's account leaves
    # alice free to queue her own.
    hatch.requestForcedWithdrawal(1, 5, sender=stranger, value=FEE)
    hatch.requestForcedExit(1, 0, sender=stranger, value=FEE)
    hatch.requestForcedWithdrawal(1, 5, sender=alice, value=FEE)
    hatch.requestForcedExit(1, 0, sender=alice, value=FEE)
    assert hatch.forcedRequestCount() == 4


def test_requestForced_again_after_served_succeeds(
    checkpoints: Any, bonded: Any, hatch: Any, alice: Any, reverts: Any
) -> None:
    hatch.requestForcedWithdrawal(1, 5, sender=alice, value=FEE)
    hatch.requestForcedWithdrawal(2, 5, sender=alice, value=FEE)
    # The latest checkpoint serves request 0 only: request 1 is still pending.
    checkpoints.post_next(forcedCursor=1)
    hatch.requestForcedWithdrawal(1, 5, sender=alice, value=FEE)
    with reverts(hatch.EscapeHatch_ForcedRequestPending, index=1):
        hatch.requestForcedWithdrawal(2, 5, sender=alice, value=FEE)
    assert hatch.forcedRequestCount() == 3


def test_forcedRequestedAt_unknown_index_reverts(
    bonded: Any, hatch: Any, alice: Any, deployer: Any, reverts: Any
) -> None:
    with reverts(hatch.EscapeHatch_UnknownForcedRequest, index=0, count=0):
        hatch.forcedRequestedAt.transact(0, sender=deployer)
    hatch.requestForcedWithdrawal(1, 5, sender=alice, value=FEE)
    with reverts(hatch.EscapeHatch_UnknownForcedRequest, index=1, count=1):
        hatch.forcedRequestedAt.transact(1, sender=deployer)


def test_forcedPrefixHash_beyond_queue_reverts(
    bonded: Any, hatch: Any, alice: Any, deployer: Any, reverts: Any
) -> None:
    hatch.requestForcedWithdrawal(1, 5, sender=alice, value=FEE)
    with reverts(hatch.EscapeHatch_ForcedCursorOutOfRange, cursor=2, count=1):
        hatch.forcedPrefixHash.transact(2, sender=deployer)


# ---------------------------------------------------------------- postCheckpoint and the queue


def test_postCheckpoint_serves_forced_requests_succeeds(
    checkpoints: Any, bonded: Any, hatch: Any, alice: Any, bob: Any
) -> None:
    hatch.requestForcedWithdrawal(1, 5, sender=alice, value=FEE)
    hatch.requestForcedExit(2, 1, sender=bob, value=FEE)
    header, _ = checkpoints.post_next(forcedCursor=2)
    assert header["forcedPrefixHash"] == bytes(hatch.forcedPrefixHash(2))
    assert bonded.getCheckpoint(1).forcedCursor == 2


def test_postCheckpoint_forced_prefix_mismatch_reverts(
    checkpoints: Any, bonded: Any, hatch: Any, alice: Any, reverts: Any
) -> None:
    hatch.requestForcedWithdrawal(1, 5, sender=alice, value=FEE)
    hatch.requestForcedWithdrawal(2, 5, sender=alice, value=FEE)
    # The operator claims two served requests but hashes only the first (skipped or altered).
    wrong = bytes(hatch.forcedPrefixHash(1))
    expected = bytes(hatch.forcedPrefixHash(2))
    header = checkpoints.next_header(forcedCursor=2, forcedPrefixHash=wrong)
    with reverts(bonded.Settlement_ForcedPrefixMismatch, expected=expected, got=wrong):
        checkpoints.post(header)


def test_postCheckpoint_forced_cursor_backwards_reverts(
    checkpoints: Any, bonded: Any, hatch: Any, alice: Any, reverts: Any
) -> None:
    hatch.requestForcedWithdrawal(1, 5, sender=alice, value=FEE)
    checkpoints.post_next(forcedCursor=1)
    with reverts(bonded.Settlement_ForcedCursorOutOfRange, previous=1, got=0, queueLength=1):
        checkpoints.post(checkpoints.next_header(forcedCursor=0))


def test_postCheckpoint_unserved_request_one_second_before_deadline_succeeds(
    checkpoints: Any, bonded: Any, hatch: Any, alice: Any, chain: Any
) -> None:
    ts = _ts(chain, hatch.requestForcedWithdrawal(1, 5, sender=alice, value=FEE))
    chain.pending_timestamp = ts + DEADLINE - 1
    checkpoints.post_next()  # leaves request 0 unserved, still on time
    assert bonded.getCheckpoint(1).forcedCursor == 0


def test_postCheckpoint_unserved_request_at_deadline_reverts(
    checkpoints: Any, bonded: Any, hatch: Any, alice: Any, chain: Any, reverts: Any
) -> None:
    ts = _ts(chain, hatch.requestForcedWithdrawal(1, 5, sender=alice, value=FEE))
    chain.pending_timestamp = ts + DEADLINE
    header = checkpoints.next_header(timestamp=ts)
    with reverts(bonded.Settlement_ForcedRequestOverdue, index=0, deadline=ts + DEADLINE):
        checkpoints.post(header)


def test_postCheckpoint_serving_overdue_request_succeeds(
    checkpoints: Any, bonded: Any, hatch: Any, alice: Any, chain: Any
) -> None:
    # Late service is still accepted as long as nobody froze the exchange first.
    ts = _ts(chain, hatch.requestForcedWithdrawal(1, 5, sender=alice, value=FEE))
    chain.pending_timestamp = ts + DEADLINE + 100
    checkpoints.post_next(forcedCursor=1)
    assert bonded.getCheckpoint(1).forcedCursor == 1


def test_postCheckpoint_partly_served_queue_overdue_reverts(
    checkpoints: Any, bonded: Any, hatch: Any, alice: Any, bob: Any, chain: Any, reverts: Any
) -> None:
    hatch.requestForcedWithdrawal(1, 5, sender=alice, value=FEE)
    second = _ts(chain, hatch.requestForcedWithdrawal(2, 5, sender=bob, value=FEE))
    chain.pending_timestamp = second + DEADLINE
    header = checkpoints.next_header(forcedCursor=1, timestamp=second)
    with reverts(bonded.Settlement_ForcedRequestOverdue, index=1, deadline=second + DEADLINE):
        checkpoints.post(header)


def test_postCheckpoint_overdue_rule_after_prefix_before_batch_rules_reverts(
    checkpoints: Any, bonded: Any, hatch: Any, alice: Any, chain: Any, reverts: Any
) -> None:
    ts = _ts(chain, hatch.requestForcedWithdrawal(1, 5, sender=alice, value=FEE))
    chain.mine(timestamp=ts + DEADLINE)
    batch = b"\x01" * (131_072 + 1)  # also too large
    header = checkpoints.next_header(batch, forcedPrefixHash=keccak256(b"x"))
    with reverts(bonded.Settlement_ForcedPrefixMismatch):
        checkpoints.post(header, batch)
    header["forcedPrefixHash"] = ZERO32
    with reverts(bonded.Settlement_ForcedRequestOverdue, index=0, deadline=ts + DEADLINE):
        checkpoints.post(header, batch)
    header.update(forcedCursor=1, forcedPrefixHash=bytes(hatch.forcedPrefixHash(1)))
    with reverts(bonded.Settlement_BatchTooLarge):
        checkpoints.post(header, batch)
