"""Checkpoint headers, withdrawal leaves and trace leaves (docs/PROTOCOL.md, section 4)."""

from __future__ import annotations

from dataclasses import astuple, dataclass

from isoperp.hashing import keccak256
from isoperp.tree.merkle import hash_leaf

ZERO32 = b"\x00" * 32


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _address_word(address: str) -> bytes:
    return b"\x00" * 12 + bytes.fromhex(address.removeprefix("0x"))


@dataclass(frozen=True, slots=True)
class CheckpointHeader:
    """The header the operator posts (v2); field order is the Solidity struct's
    (CheckpointLib.sol): ``uint64 seq, bytes32 prevHash, bytes32 stateRoot, uint64 depositCursor,
    bytes32 depositPrefixHash, uint64 forcedCursor, bytes32 forcedPrefixHash, bytes32
    withdrawalsRoot, uint64 withdrawalCount, uint128 withdrawalTotal, bytes32 batchHash, bytes32
    traceRoot, uint32 recordCount, uint32 batchLength, uint64 timestamp``."""

    seq: int
    prev_hash: bytes
    state_root: bytes
    deposit_cursor: int
    deposit_prefix_hash: bytes
    forced_cursor: int
    forced_prefix_hash: bytes
    withdrawals_root: bytes
    withdrawal_count: int
    withdrawal_total: int
    batch_hash: bytes
    trace_root: bytes
    record_count: int
    batch_length: int
    timestamp: int

    @classmethod
    def genesis(cls, state_root: bytes) -> CheckpointHeader:
        """Every field zero except the state root (the Settlement's genesis checkpoint)."""
        return cls(
            0, ZERO32, state_root, 0, ZERO32, 0, ZERO32, ZERO32, 0, 0, ZERO32, ZERO32, 0, 0, 0
        )

    def encode(self) -> bytes:
        """abi.encode(header): fifteen static words."""
        return b"".join(
            value if isinstance(value, bytes) else _word(value) for value in astuple(self)
        )

    @property
    def hash(self) -> bytes:
        """checkpointHash = keccak256(abi.encode(header))."""
        return keccak256(self.encode())

    def as_abi_tuple(self) -> tuple[int | bytes, ...]:
        """The struct as web3.py expects it for a contract call."""
        return astuple(self)


@dataclass(frozen=True, slots=True)
class WithdrawalLeaf:
    """Leaf of a checkpoint's withdrawals tree."""

    account_id: int
    recipient: str
    amount: int

    @property
    def leaf_hash(self) -> bytes:
        return hash_leaf(
            _word(self.account_id) + _address_word(self.recipient) + _word(self.amount)
        )


def trace_leaf_hash(index: int, offset: int, record: bytes, state_root_after: bytes) -> bytes:
    """Leaf ``index`` of the trace tree: ``keccak256(0x00 ‖ abi.encode(uint32 i, uint32 offset_i,
    bytes32 keccak256(record_i), bytes32 stateRootAfter_i))``; ``offset_i`` is the byte offset of
    the record's type byte in the batch data."""
    return hash_leaf(_word(index) + _word(offset) + keccak256(record) + state_root_after)
