"""Batch building: applies transitions to the ledger and seals them into a checkpoint.

For every accepted transition the builder keeps its record bytes and the state root after it (the
trace, for fraud proofs), appends Withdraw records to the withdrawals tree and advances the deposit
queue's prefix hash. ``seal`` produces the header and batch data the operator posts. No I/O.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from isoperp.errors import ProtocolError
from isoperp.hashing import keccak256
from isoperp.ledger.model import Account, Market, Position
from isoperp.ledger.risk import escape_value
from isoperp.ledger.transitions import Deposit, Transition, Withdraw
from isoperp.protocol.batch import HEADER_BYTES, assemble_batch, encode_record
from isoperp.protocol.constants import (
    INSURANCE_ACCOUNT,
    MAX_BATCH_BYTES,
    TRACE_TREE_DEPTH,
    WITHDRAWAL_TREE_DEPTH,
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

    def market(self, market_id: int) -> Market | None: ...


def escape_claims_total(ledger: LedgerLike) -> int:
    """What the state is worth in an escape: every account's free collateral plus, per isolated
    position, ``risk.escape_value``: max(0, equity with pending funding at the market's mark
    price). The insurance account (owner 0) is no claim. The haircut's denominator (PROTOCOL §4)."""
    total = sum(a.collateral for a in ledger.accounts())
    for p in ledger.positions():
        if p.account_id == INSURANCE_ACCOUNT:
            continue
        market = ledger.market(p.market_id)
        assert market is not None  # positions only exist in listed markets
        total += escape_value(p, market)
    return total


def deposit_prefix_step(prefix: bytes, deposit: Deposit) -> bytes:
    """h_{i+1} = keccak256(abi.encode(h_i, index, owner, amount, timestamp)) (the vault's chain)."""
    return keccak256(
        prefix
        + deposit.deposit_index.to_bytes(32, "big")
        + b"\x00" * 12
        + bytes.fromhex(deposit.owner.removeprefix("0x"))
        + deposit.amount.to_bytes(32, "big")
        + deposit.timestamp.to_bytes(32, "big")
    )


def withdrawals_tree(withdrawals: list[WithdrawalLeaf]) -> SparseMerkleTree:
    return SparseMerkleTree(
        WITHDRAWAL_TREE_DEPTH, ((i, w.leaf_hash) for i, w in enumerate(withdrawals))
    )


@dataclass(frozen=True, slots=True)
class SealedBatch:
    """A checkpoint ready to post, with what is needed to serve proofs of its withdrawals."""

    header: CheckpointHeader
    data: bytes
    transitions: tuple[Transition, ...]
    withdrawals: tuple[WithdrawalLeaf, ...]
    roots_after: tuple[bytes, ...]

    def withdrawal_proof(self, index: int) -> list[bytes]:
        return withdrawals_tree(list(self.withdrawals)).proof(index)


class BatchFull(ProtocolError):
    """The next transition does not fit the batch (bytes or withdrawal count); seal first."""

    code = "batch_full"


class BatchBuilder:
    """Collects transitions on top of ``previous`` (the latest posted checkpoint)."""

    def __init__(self, ledger: LedgerLike, previous: CheckpointHeader) -> None:
        self._ledger = ledger
        self.previous = previous
        self._records: list[bytes] = []
        self._transitions: list[Transition] = []
        self._roots_after: list[bytes] = []
        self._withdrawals: list[WithdrawalLeaf] = []
        self._size = HEADER_BYTES
        self._deposit_cursor = previous.deposit_cursor
        self._deposit_prefix = previous.deposit_prefix_hash

    def __len__(self) -> int:
        return len(self._records)

    @property
    def size(self) -> int:
        """Bytes of batch data so far."""
        return self._size

    def add(self, t: Transition) -> object:
        """Applies ``t`` to the ledger and records it. Raises BatchFull or TransitionRejected
        (from the ledger); in both cases neither the ledger nor the batch changed."""
        record = encode_record(t)
        if self._size + len(record) > MAX_BATCH_BYTES:
            raise BatchFull(f"batch would exceed {MAX_BATCH_BYTES} bytes")
        if isinstance(t, Withdraw) and len(self._withdrawals) >= 1 << WITHDRAWAL_TREE_DEPTH:
            raise BatchFull(f"batch already holds {1 << WITHDRAWAL_TREE_DEPTH} withdrawals")
        result = self._ledger.apply(t)
        self._records.append(record)
        self._transitions.append(t)
        self._roots_after.append(self._ledger.state_root)
        self._size += len(record)
        if isinstance(t, Withdraw):
            self._withdrawals.append(WithdrawalLeaf(t.account_id, t.recipient, t.amount))
        elif isinstance(t, Deposit):
            self._deposit_prefix = deposit_prefix_step(self._deposit_prefix, t)
            self._deposit_cursor = t.deposit_index + 1
        return result

    def seal(self, *, timestamp: int) -> SealedBatch:
        """The next checkpoint: header (seq = previous + 1) and batch data."""
        data = assemble_batch(self._records)
        trace = SparseMerkleTree(
            TRACE_TREE_DEPTH,
            (
                (i, trace_leaf_hash(i, record, root))
                for i, (record, root) in enumerate(
                    zip(self._records, self._roots_after, strict=True)
                )
            ),
        )
        withdrawals = withdrawals_tree(self._withdrawals)
        header = CheckpointHeader(
            seq=self.previous.seq + 1,
            prev_hash=self.previous.hash,
            state_root=self._ledger.state_root,
            deposit_cursor=self._deposit_cursor,
            deposit_prefix_hash=self._deposit_prefix,
            forced_cursor=self.previous.forced_cursor,
            forced_prefix_hash=self.previous.forced_prefix_hash,
            withdrawals_root=withdrawals.root,
            withdrawal_count=len(self._withdrawals),
            withdrawal_total=sum(w.amount for w in self._withdrawals),
            claims_total=escape_claims_total(self._ledger),
            batch_hash=keccak256(data),
            trace_root=trace.root,
            timestamp=max(timestamp, self.previous.timestamp),
        )
        return SealedBatch(
            header=header,
            data=data,
            transitions=tuple(self._transitions),
            withdrawals=tuple(self._withdrawals),
            roots_after=tuple(self._roots_after),
        )
