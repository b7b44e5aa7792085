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
    """The header the operator posts; field order is the Solidity struct's."""

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
    claims_total: int
    batch_hash: bytes
    trace_root: bytes
    timestamp: int

    @classmethod
    def genesis(cls, state_root: bytes) -> CheckpointHeader:
        return cls(0, ZERO32, state_root, 0, ZERO32, 0, ZERO32, ZERO32, 0, 0, 0, ZERO32, ZERO32, 0)

    def encode(self) -> bytes:
        """abi.encode(header): fourteen static words."""
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


def trace_leaf_hash(index: int, record: bytes, state_root_after: bytes) -> bytes:
    """Leaf ``index`` of the trace tree: (i, keccak(record_i), stateRootAfter_i)."""
    return hash_leaf(_word(index) + keccak256(record) + state_root_after)
