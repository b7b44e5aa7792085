"""Batch data v2 (docs/PROTOCOL.md, section 3).

``batch = version:u8 (=2) ‖ count:u32 ‖ entry[count]``, ``entry = record ‖ stateRootAfter:bytes32``,
``record = type:u8 ‖ fixed-length payload``; the record layouts are the table in
``protocol.records``. Record ``i`` starts at byte ``offset_i`` (``offset_0 = 5``, ``offset_{i+1} =
offset_i + len(record_i) + 32``). Decoding is strict: unknown versions and record types, truncated
or trailing bytes and out-of-range values raise ProtocolError.

The data is committed to by ``batch_hash``: the data cut into ``BATCH_CHUNK_BYTES`` chunks (the last
may be shorter), ``keccak256(keccak256(chunk_0) ‖ keccak256(chunk_1) ‖ …)`` (BatchLib.sol)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from isoperp.errors import ProtocolError
from isoperp.hashing import keccak256
from isoperp.ledger.transitions import Transition
from isoperp.protocol.constants import BATCH_CHUNK_BYTES, BATCH_VERSION, MAX_BATCH_BYTES
from isoperp.protocol.records import BY_CLASS, BY_CODE, SIGNATURE_BYTES, record_sizes

__all__ = [
    "HEADER_BYTES",
    "ROOT_BYTES",
    "SIGNATURE_BYTES",
    "BatchEntry",
    "assemble_batch",
    "batch_hash",
    "chunk_hashes",
    "decode_batch",
    "decode_entries",
    "encode_batch",
    "encode_record",
    "record_sizes",
]

HEADER_BYTES: Final = 5
ROOT_BYTES: Final = 32
_PREFIX: Final = struct.Struct(">BI")


def encode_record(t: Transition) -> bytes:
    """The record bytes of one transition (type byte included)."""
    codec = BY_CLASS.get(type(t))
    if codec is None:
        raise ProtocolError(f"not a transition: {type(t).__name__}", code="bad_record")
    error = codec.wire_error(t)
    if error is not None:
        raise ProtocolError(f"{codec.layout.name}: {error}", code="bad_record")
    return codec.encode(t)


@dataclass(frozen=True, slots=True)
class BatchEntry:
    """Entry ``index`` of a batch: its record (type byte at ``offset``) and the state root
    after it."""

    index: int
    offset: int
    record: bytes
    transition: Transition
    root_after: bytes


def assemble_batch(records: Sequence[bytes], roots_after: Sequence[bytes]) -> bytes:
    """``version ‖ count ‖ (record ‖ stateRootAfter)*`` from encoded records and their roots."""
    if len(records) != len(roots_after):
        raise ProtocolError(
            f"{len(records)} records but {len(roots_after)} state roots", code="bad_batch"
        )
    if len(records) >= 1 << 32:
        raise ProtocolError(f"{len(records)} records do not fit a u32 count", code="bad_batch")
    parts = [_PREFIX.pack(BATCH_VERSION, len(records))]
    for record, root in zip(records, roots_after, strict=True):
        if len(root) != ROOT_BYTES:
            raise ProtocolError("a state root is 32 bytes", code="bad_batch")
        parts.append(record)
        parts.append(root)
    return b"".join(parts)


def encode_batch(transitions: Sequence[Transition], roots_after: Sequence[bytes]) -> bytes:
    """The batch data of ``transitions`` with their state roots; raises ProtocolError beyond
    MAX_BATCH_BYTES."""
    data = assemble_batch([encode_record(t) for t in transitions], roots_after)
    if len(data) > MAX_BATCH_BYTES:
        raise ProtocolError(
            f"batch is {len(data)} bytes, the maximum is {MAX_BATCH_BYTES}", code="batch_too_large"
        )
    return data


def decode_entries(data: bytes) -> list[BatchEntry]:
    """Parses batch data into its entries (strict)."""
    size = len(data)
    if size > MAX_BATCH_BYTES:
        raise ProtocolError(f"batch is {size} bytes, over {MAX_BATCH_BYTES}", code="bad_batch")
    if size < HEADER_BYTES:
        raise ProtocolError(f"batch truncated at byte {size}", code="bad_batch")
    version, count = _PREFIX.unpack_from(data, 0)
    if version != BATCH_VERSION:
        raise ProtocolError(f"unknown batch version {version}", code="bad_batch")
    pos = HEADER_BYTES
    out: list[BatchEntry] = []
    for i in range(count):
        if pos >= size:
            raise ProtocolError(f"batch truncated at byte {pos}", code="bad_batch")
        kind = data[pos]
        codec = BY_CODE.get(kind)
        if codec is None:
            raise ProtocolError(f"record {i}: unknown record type {kind:#04x}", code="bad_batch")
        end = pos + codec.struct.size
        if end + ROOT_BYTES > size:
            raise ProtocolError(f"batch truncated at byte {pos}", code="bad_batch")
        t = codec.decode(data, pos)
        if isinstance(t, str):
            raise ProtocolError(f"record {i}: {t}", code="bad_batch")
        out.append(BatchEntry(i, pos, data[pos:end], t, data[end : end + ROOT_BYTES]))
        pos = end + ROOT_BYTES
    if pos != size:
        raise ProtocolError(f"{size - pos} trailing bytes after the records", code="bad_batch")
    return out


def decode_batch(data: bytes) -> list[Transition]:
    """Parses batch data back into transitions (strict)."""
    return [entry.transition for entry in decode_entries(data)]


def chunk_hashes(data: bytes) -> list[bytes]:
    """keccak256 of each BATCH_CHUNK_BYTES chunk of ``data`` (the last may be shorter)."""
    return [
        keccak256(data[start : start + BATCH_CHUNK_BYTES])
        for start in range(0, len(data), BATCH_CHUNK_BYTES)
    ]


def batch_hash(data: bytes) -> bytes:
    """The header's batchHash: keccak256 of the concatenated chunk hashes (BatchLib.hash)."""
    return keccak256(b"".join(chunk_hashes(data)))
