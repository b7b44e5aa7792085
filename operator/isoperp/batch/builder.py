"""Batch building: applies transitions to the ledger and seals them into a checkpoint.

For every accepted transition the builder keeps its record bytes and the state root after it (the
trace: published in the batch data after each record, committed to by the header's traceRoot)
and advances the prefix hashes of the deposit queue and of the forced-request queue. What leaves
the exchange is appended by the ledger itself to the global withdrawals tree, whose root, count and
total live in the exchange leaf: the header copies them (cumulative since genesis). ``seal``
produces the header and batch data the operator posts. No I/O.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from isoperp.errors import ProtocolError
from isoperp.hashing import keccak256
from isoperp.ledger.model import Account, Exchange, Market, Position
from isoperp.ledger.transitions import (
    Deposit,
    DepositRejected,
    Fill,
    ForcedExit,
    ForcedWithdraw,
    Liquidate,
    Transition,
)
from isoperp.protocol.batch import (
    HEADER_BYTES,
    ROOT_BYTES,
    assemble_batch,
    batch_hash,
    encode_record,
)
from isoperp.protocol.constants import (
    FORCED_KIND_EXIT,
    FORCED_KIND_WITHDRAWAL,
    MAX_BATCH_BYTES,
    MAX_BATCH_RECORDS,
    TRACE_TREE_DEPTH,
)
from isoperp.protocol.header import CheckpointHeader, WithdrawalLeaf, trace_leaf_hash
from isoperp.tree.merkle import SparseMerkleTree


class LedgerLike(Protocol):
    """What the builder needs of the ledger."""

    def apply(self, t: Transition) -> object: ...

    @property
    def state_root(self) -> bytes: ...

    def accounts(self) -> Iterator[Account]: ...

    def positions(self) -> Iterator[Position]: ...

    @property
    def exchange(self) -> Exchange: ...

    def withdrawals(self, start: int = 0, end: int | None = None) -> list[WithdrawalLeaf]: ...

    def market(self, market_id: int) -> Market | None: ...


def deposit_prefix_step(prefix: bytes, deposit: Deposit | DepositRejected) -> bytes:
    """h_{i+1} = keccak256(abi.encode(h_i, index, owner, amount, timestamp)) (the vault's chain)."""
    return keccak256(
        prefix
        + deposit.deposit_index.to_bytes(32, "big")
        + b"\x00" * 12
        + bytes.fromhex(deposit.owner.removeprefix("0x"))
        + deposit.amount.to_bytes(32, "big")
        + deposit.timestamp.to_bytes(32, "big")
    )


def forced_prefix_step(prefix: bytes, t: ForcedWithdraw | ForcedExit) -> bytes:
    """r_{i+1} = keccak256(abi.encode(r_i, uint64 index, uint8 kind, address requester,
    uint32 accountId, uint16 marketId, uint128 amount, uint64 timestamp)) (the Settlement's
    forced-request chain; a withdrawal's entry has marketId 0, an exit's amount 0)."""
    if isinstance(t, ForcedWithdraw):
        kind, market_id, amount = FORCED_KIND_WITHDRAWAL, 0, t.amount
    else:
        kind, market_id, amount = FORCED_KIND_EXIT, t.market_id, 0
    return keccak256(
        prefix
        + t.forced_index.to_bytes(32, "big")
        + kind.to_bytes(32, "big")
        + b"\x00" * 12
        + bytes.fromhex(t.requester.removeprefix("0x"))
        + t.account_id.to_bytes(32, "big")
        + market_id.to_bytes(32, "big")
        + amount.to_bytes(32, "big")
        + t.timestamp.to_bytes(32, "big")
    )


def trace_offsets(records: list[bytes] | tuple[bytes, ...]) -> list[int]:
    """``offset_i`` of each record: the byte offset of its type byte in the batch data."""
    offsets = []
    offset = HEADER_BYTES
    for record in records:
        offsets.append(offset)
        offset += len(record) + ROOT_BYTES
    return offsets


def trace_tree(
    records: list[bytes] | tuple[bytes, ...], roots_after: list[bytes] | tuple[bytes, ...]
) -> SparseMerkleTree:
    """The trace tree: leaf i = ``trace_leaf_hash(i, offset_i, record_i, stateRootAfter_i)``."""
    return SparseMerkleTree(
        TRACE_TREE_DEPTH,
        (
            (i, trace_leaf_hash(i, offset, record, root))
            for i, (offset, record, root) in enumerate(
                zip(trace_offsets(records), records, roots_after, strict=True)
            )
        ),
    )


@dataclass(frozen=True, slots=True)
class SealedBatch:
    """A checkpoint ready to post. ``withdrawals`` are the leaves this batch appended to the global
    withdrawals tree, at indices ``first_withdrawal``, ``first_withdrawal + 1``, ... (proofs come
    from the ledger: ``Ledger.withdrawals_tree(header.withdrawal_count)``)."""

    header: CheckpointHeader
    data: bytes
    transitions: tuple[Transition, ...]
    withdrawals: tuple[WithdrawalLeaf, ...]
    roots_after: tuple[bytes, ...]
    records: tuple[bytes, ...] = ()
    first_withdrawal: int = 0

    def trace_proof(self, index: int) -> list[bytes]:
        """The TRACE_TREE_DEPTH siblings of trace leaf ``index`` (bottom-up)."""
        return trace_tree(self.records, self.roots_after).proof(index)


class BatchFull(ProtocolError):
    """The next transition does not fit the batch (bytes or records); seal first."""

    code = "batch_full"


class BatchBuilder:
    """Collects transitions on top of ``previous`` (the latest posted checkpoint)."""

    def __init__(self, ledger: LedgerLike, previous: CheckpointHeader) -> None:
        self._ledger = ledger
        self.previous = previous
        self._records: list[bytes] = []
        self._transitions: list[Transition] = []
        self._roots_after: list[bytes] = []
        self._first_withdrawal = ledger.exchange.withdrawal_count
        self._size = HEADER_BYTES
        self._deposit_cursor = previous.deposit_cursor
        self._deposit_prefix = previous.deposit_prefix_hash
        self._forced_cursor = previous.forced_cursor
        self._forced_prefix = previous.forced_prefix_hash
        self._fills = 0

    def __len__(self) -> int:
        return len(self._records)

    @property
    def size(self) -> int:
        """Bytes of batch data so far (records and their state roots)."""
        return self._size

    @property
    def fills(self) -> int:
        """Trades so far: FILL records and liquidations through the book (what a batch cadence of
        "every N fills" counts)."""
        return self._fills

    @property
    def withdrawal_count(self) -> int:
        """Leaves in the global withdrawals tree so far: the index the next paying record gets
        (Withdraw, DepositRejected, FeeCollect, or a forced withdrawal / exit that pays > 0 —
        only its applied result says whether)."""
        return self._ledger.exchange.withdrawal_count

    @property
    def forced_cursor(self) -> int:
        """Forced requests served up to here (the header's ``forcedCursor`` if sealed now)."""
        return self._forced_cursor

    @property
    def forced_prefix_hash(self) -> bytes:
        """The forced queue's prefix hash at ``forced_cursor``: after serving entry ``i`` it must
        equal that entry's ``ForcedRequested.prefixHash``."""
        return self._forced_prefix

    def add(self, t: Transition) -> object:
        """Applies ``t`` to the ledger and records it. Raises BatchFull or TransitionRejected
        (from the ledger); in both cases neither the ledger nor the batch changed."""
        record = encode_record(t)
        if self._size + len(record) + ROOT_BYTES > MAX_BATCH_BYTES:
            raise BatchFull(f"batch would exceed {MAX_BATCH_BYTES} bytes")
        if len(self._records) >= MAX_BATCH_RECORDS:
            raise BatchFull(f"batch already holds {MAX_BATCH_RECORDS} records")
        result = self._ledger.apply(t)
        self._records.append(record)
        self._transitions.append(t)
        self._roots_after.append(self._ledger.state_root)
        self._size += len(record) + ROOT_BYTES
        if isinstance(t, Fill | Liquidate):
            self._fills += 1
        elif isinstance(t, ForcedWithdraw | ForcedExit):
            self._forced_prefix = forced_prefix_step(self._forced_prefix, t)
            self._forced_cursor = t.forced_index + 1
        elif isinstance(t, Deposit | DepositRejected):
            self._deposit_prefix = deposit_prefix_step(self._deposit_prefix, t)
            self._deposit_cursor = t.deposit_index + 1
        return result

    def seal(self, *, timestamp: int) -> SealedBatch:
        """The next checkpoint: header (seq = previous + 1) and batch data."""
        data = assemble_batch(self._records, self._roots_after)
        trace = trace_tree(self._records, self._roots_after)
        exchange = self._ledger.exchange
        header = CheckpointHeader(
            seq=self.previous.seq + 1,
            prev_hash=self.previous.hash,
            state_root=self._ledger.state_root,
            deposit_cursor=self._deposit_cursor,
            deposit_prefix_hash=self._deposit_prefix,
            forced_cursor=self._forced_cursor,
            forced_prefix_hash=self._forced_prefix,
            withdrawals_root=exchange.withdrawals_root,
            withdrawal_count=exchange.withdrawal_count,
            withdrawal_total=exchange.withdrawal_total,
            batch_hash=batch_hash(data),
            trace_root=trace.root,
            record_count=len(self._records),
            batch_length=len(data),
            timestamp=max(timestamp, self.previous.timestamp),
        )
        return SealedBatch(
            header=header,
            data=data,
            transitions=tuple(self._transitions),
            withdrawals=tuple(self._ledger.withdrawals(self._first_withdrawal)),
            roots_after=tuple(self._roots_after),
            records=tuple(self._records),
            first_withdrawal=self._first_withdrawal,
        )
