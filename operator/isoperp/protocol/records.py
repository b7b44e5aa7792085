"""The record layouts of the batch data (docs/PROTOCOL.md, section 3): the ONE table.

``RECORDS`` lists, per record type, its type byte, its name, the transition class it carries and its
ordered payload fields with their wire types. Everything else is compiled from it at import time:

- the encoder and the decoder (``protocol.batch``): one ``struct.Struct`` per record, plus a
  conversion for the fields ``struct`` has no code for (128-bit integers, addresses, signatures);
- the field range checks: ``wire_error`` (what the batch can carry; the encoder's check) and
  ``field_error`` (the same, plus the tighter bounds the ledger enforces, e.g. order slots < 64;
  the ledger rejects a transition it reports as ``malformed``);
- the Markdown record table of docs/PROTOCOL.md (``render_record_table``), which a test parses and
  compares with this table.

Adding a record type is one ``RecordLayout`` entry below (its transition class must exist and its
field names must be the class's attributes, in order). No I/O.

Wire types: ``u8 u16 u32 u64 u128`` big-endian unsigned, ``i32 i128`` big-endian two's complement,
``address`` 20 bytes, ``bool`` one byte 0 or 1, ``sig65`` a 65-byte signature ``r ‖ s ‖ v``.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Final

from isoperp.ledger.model import checksum_address, eip55_from_lower_hex
from isoperp.ledger.transitions import (
    Backstop,
    CancelOrder,
    Deleverage,
    Deposit,
    DepositRejected,
    FeeCollect,
    Fill,
    ForcedExit,
    ForcedWithdraw,
    Funding,
    Liquidate,
    MarginTransfer,
    OrderDone,
    PlaceOrder,
    PriceUpdate,
    Transition,
    Withdraw,
)
from isoperp.protocol.constants import (
    ORDER_SLOTS,
    RECORD_BACKSTOP,
    RECORD_CANCEL,
    RECORD_DELEVERAGE,
    RECORD_DEPOSIT,
    RECORD_DEPOSIT_REJECTED,
    RECORD_FEE_COLLECT,
    RECORD_FILL,
    RECORD_FORCED_EXIT,
    RECORD_FORCED_WITHDRAW,
    RECORD_FUNDING,
    RECORD_LIQUIDATE,
    RECORD_MARGIN_TRANSFER,
    RECORD_ORDER,
    RECORD_ORDER_DONE,
    RECORD_PRICE,
    RECORD_WITHDRAW,
)

SIGNATURE_BYTES: Final = 65

# wire type -> (bytes, struct code). 128-bit integers, addresses and signatures travel as raw bytes.
WIRE_TYPES: Final[dict[str, tuple[int, str]]] = {
    "u8": (1, "B"),
    "u16": (2, "H"),
    "u32": (4, "I"),
    "u64": (8, "Q"),
    "u128": (16, "16s"),
    "i32": (4, "i"),
    "i128": (16, "16s"),
    "address": (20, "20s"),
    "bool": (1, "B"),
    "sig65": (SIGNATURE_BYTES, "65s"),
}


def _camel(attr: str) -> str:
    head, *rest = attr.split("_")
    return head + "".join(part.capitalize() for part in rest)


@dataclass(frozen=True, slots=True)
class Field:
    """One payload field: the transition attribute, its wire type and, for the ledger, an optional
    exclusive upper bound tighter than the wire type's (``below``)."""

    attr: str
    wire: str
    below: int | None = None

    @property
    def name(self) -> str:
        """The field's name in docs/PROTOCOL.md (the attribute in camelCase)."""
        return _camel(self.attr)

    @property
    def size(self) -> int:
        return WIRE_TYPES[self.wire][0]


def _fields(spec: str) -> tuple[Field, ...]:
    """``"attr:wire attr:wire<bound ..."`` -> fields (``<bound``: the ledger's tighter bound)."""
    out = []
    for item in spec.split():
        attr, wire = item.split(":")
        wire, _, bound = wire.partition("<")
        if wire not in WIRE_TYPES:
            raise ValueError(f"unknown wire type {wire!r} in {item!r}")
        out.append(Field(attr, wire, int(bound) if bound else None))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class RecordLayout:
    """One record type: ``code ‖ payload``, the payload being ``fields`` in order."""

    code: int
    name: str
    cls: type
    fields: tuple[Field, ...]
    note: str = field(default="")

    @property
    def payload_bytes(self) -> int:
        return sum(f.size for f in self.fields)

    @property
    def record_bytes(self) -> int:
        """Type byte included."""
        return 1 + self.payload_bytes

    def payload_spec(self) -> str:
        """The payload as docs/PROTOCOL.md writes it: ``name:wire`` separated by spaces."""
        return " ".join(f"{f.name}:{f.wire}" for f in self.fields)


_SLOT = f"u8<{ORDER_SLOTS}"

RECORDS: Final[tuple[RecordLayout, ...]] = (
    RecordLayout(
        RECORD_DEPOSIT,
        "Deposit",
        Deposit,
        _fields("deposit_index:u64 account_id:u32 owner:address amount:u128 timestamp:u64"),
    ),
    RecordLayout(
        RECORD_WITHDRAW,
        "Withdraw",
        Withdraw,
        _fields("account_id:u32 recipient:address amount:u128 nonce:u64 signature:sig65"),
    ),
    RecordLayout(
        RECORD_MARGIN_TRANSFER,
        "MarginTransfer",
        MarginTransfer,
        _fields("account_id:u32 market_id:u16 amount:i128 nonce:u64 signature:sig65"),
        "amount > 0 moves free collateral into the position, < 0 moves it back",
    ),
    RecordLayout(
        RECORD_FILL,
        "Fill",
        Fill,
        _fields(
            f"market_id:u16 maker_id:u32 maker_slot:{_SLOT} taker_id:u32 taker_slot:{_SLOT}"
            " size:u64 price:u64 timestamp:u64"
        ),
    ),
    RecordLayout(
        RECORD_ORDER,
        "Order",
        PlaceOrder,
        _fields(
            "account_id:u32 market_id:u16 is_buy:bool price:u64 size:u64 time_in_force:u8"
            " flags:u8 nonce:u64 expiry:u64 signature:sig65"
        ),
    ),
    RecordLayout(
        RECORD_CANCEL, "Cancel", CancelOrder, _fields("account_id:u32 nonce:u64 signature:sig65")
    ),
    RecordLayout(
        RECORD_ORDER_DONE, "OrderDone", OrderDone, _fields(f"account_id:u32 slot:{_SLOT}")
    ),
    RecordLayout(
        RECORD_PRICE,
        "Price",
        PriceUpdate,
        _fields("market_id:u16 price:u64 timestamp:u64 signature:sig65"),
        "signed by the oracle",
    ),
    RecordLayout(
        RECORD_FUNDING, "Funding", Funding, _fields("market_id:u16 rate_ppm:i32 timestamp:u64")
    ),
    RecordLayout(
        RECORD_LIQUIDATE,
        "Liquidate",
        Liquidate,
        _fields(
            f"market_id:u16 account_id:u32 maker_id:u32 maker_slot:{_SLOT} size:u64 price:u64"
            " timestamp:u64"
        ),
    ),
    RecordLayout(
        RECORD_BACKSTOP, "Backstop", Backstop, _fields("market_id:u16 account_id:u32 timestamp:u64")
    ),
    RecordLayout(
        RECORD_DELEVERAGE,
        "Deleverage",
        Deleverage,
        _fields("market_id:u16 account_id:u32 counterparty_id:u32 size:u64 timestamp:u64"),
    ),
    RecordLayout(
        RECORD_FORCED_WITHDRAW,
        "ForcedWithdraw",
        ForcedWithdraw,
        _fields("forced_index:u64 account_id:u32 requester:address amount:u128 timestamp:u64"),
        "forced-request queue entry `forcedIndex`, kind 1, section 4.1",
    ),
    RecordLayout(
        RECORD_FORCED_EXIT,
        "ForcedExit",
        ForcedExit,
        _fields("forced_index:u64 account_id:u32 market_id:u16 requester:address timestamp:u64"),
        "queue entry, kind 2",
    ),
    RecordLayout(
        RECORD_DEPOSIT_REJECTED,
        "DepositRejected",
        DepositRejected,
        _fields("deposit_index:u64 account_id:u32 owner:address amount:u128 timestamp:u64"),
        "a deposit that cannot be credited; refunded through the withdrawals tree",
    ),
    RecordLayout(
        RECORD_FEE_COLLECT,
        "FeeCollect",
        FeeCollect,
        _fields("amount:u128"),
        "collected fees: 20% to the insurance fund, the rest to the fee recipient",
    ),
)


# ------------------------------------------------------------------------------------------------
# Compiled from the table


def _range(wire: str) -> tuple[int, int]:
    """[lo, hi) of an integer wire type (bool: 0..1 as its own check)."""
    bits = 8 * WIRE_TYPES[wire][0]
    if wire.startswith("i"):
        return -(1 << (bits - 1)), 1 << (bits - 1)
    return 0, 1 << bits


_INT, _BOOL, _ADDRESS, _SIG = 0, 1, 2, 3


def _address_ok(value: object) -> bool:
    try:
        checksum_address(value)  # type: ignore[arg-type]
    except ValueError:
        return False
    return True


def _check_plan(
    layout: RecordLayout, *, ledger: bool
) -> tuple[tuple[str, int, int, int, str], ...]:
    """Per field (attr, kind, lo, hi, what it must be); ``ledger`` applies the tighter bounds."""
    plan: list[tuple[str, int, int, int, str]] = []
    for f in layout.fields:
        if f.wire == "bool":
            plan.append((f.attr, _BOOL, 0, 0, "a bool"))
        elif f.wire == "address":
            plan.append((f.attr, _ADDRESS, 0, 0, "an address"))
        elif f.wire == "sig65":
            plan.append((f.attr, _SIG, 0, 0, f"{SIGNATURE_BYTES} bytes"))
        else:
            lo, hi = _range(f.wire)
            what = f"a {'uint' if lo == 0 else 'int'}{8 * f.size}"
            if ledger and f.below is not None and f.below < hi:
                hi, what = f.below, f"a {f.wire} < {f.below}"
            plan.append((f.attr, _INT, lo, hi, what))
    return tuple(plan)


def _compile_check(layout: RecordLayout, *, ledger: bool) -> Callable[[Any], str | None]:
    """A function returning None when every field of a transition fits (its wire type and, with
    ``ledger``, its tighter bound), else a message naming the first field that does not."""
    checks = _check_plan(layout, ledger=ledger)

    def check(t: Any) -> str | None:
        for attr, kind, lo, hi, what in checks:
            value = getattr(t, attr)
            if kind == _INT:
                ok = type(value) is int and lo <= value < hi
            elif kind == _BOOL:
                ok = type(value) is bool
            elif kind == _SIG:
                ok = type(value) is bytes and len(value) == SIGNATURE_BYTES
            else:
                ok = _address_ok(value)
            if not ok:
                return f"{attr}={value!r} is not {what}"
        return None

    return check


@dataclass(frozen=True, slots=True)
class RecordCodec:
    """The compiled form of one ``RecordLayout``."""

    layout: RecordLayout
    struct: struct.Struct  # ">B" (the type byte) + the payload
    getter: Callable[[Any], tuple[Any, ...]]
    to_wire: tuple[tuple[int, Callable[[Any], Any]], ...]  # (value index, conversion)
    from_wire: tuple[tuple[int, Callable[[Any], Any]], ...]
    bool_indexes: tuple[int, ...]
    wire_error: Callable[[Any], str | None]
    field_error: Callable[[Any], str | None]

    def encode(self, t: Any) -> bytes:
        """The record (type byte included). Call ``wire_error`` first: values must fit."""
        if not self.to_wire:
            return self.struct.pack(self.layout.code, *self.getter(t))
        values = list(self.getter(t))
        for i, convert in self.to_wire:
            values[i] = convert(values[i])
        return self.struct.pack(self.layout.code, *values)

    def decode(self, data: bytes, offset: int) -> Transition | str:
        """The transition of the record at ``offset`` (its type byte), or an error message."""
        values = list(self.struct.unpack_from(data, offset))
        for i in self.bool_indexes:
            if values[i] > 1:
                return f"flag byte must be 0 or 1, got {values[i]}"
            values[i] = values[i] == 1
        for i, convert in self.from_wire:
            values[i] = convert(values[i])
        transition: Transition = self.layout.cls(*values[1:])
        return transition


def _u128_to(value: int) -> bytes:
    return value.to_bytes(16, "big")


def _i128_to(value: int) -> bytes:
    return value.to_bytes(16, "big", signed=True)


def _address_to(value: str) -> bytes:
    return bytes.fromhex(value[2:])


def _u128_from(raw: bytes) -> int:
    return int.from_bytes(raw, "big")


def _i128_from(raw: bytes) -> int:
    return int.from_bytes(raw, "big", signed=True)


def _address_from(raw: bytes) -> str:
    return eip55_from_lower_hex(raw.hex().encode("ascii"))


_TO_WIRE: Final[dict[str, Callable[[Any], Any]]] = {
    "u128": _u128_to,
    "i128": _i128_to,
    "address": _address_to,
}
_FROM_WIRE: Final[dict[str, Callable[[Any], Any]]] = {
    "u128": _u128_from,
    "i128": _i128_from,
    "address": _address_from,
}


def _compile(layout: RecordLayout) -> RecordCodec:
    attrs = tuple(f.attr for f in layout.fields)
    declared = tuple(f.name for f in fields(layout.cls))
    if attrs != declared:
        raise ValueError(
            f"{layout.name}: fields {attrs} are not {layout.cls.__name__}'s {declared}"
        )
    getter: Callable[[Any], tuple[Any, ...]] = operator.attrgetter(*attrs)
    if len(attrs) == 1:
        single = operator.attrgetter(attrs[0])
        getter = lambda t: (single(t),)  # noqa: E731
    fmt = ">B" + "".join(WIRE_TYPES[f.wire][1] for f in layout.fields)
    return RecordCodec(
        layout=layout,
        struct=struct.Struct(fmt),
        getter=getter,
        to_wire=tuple(
            (i, _TO_WIRE[f.wire]) for i, f in enumerate(layout.fields) if f.wire in _TO_WIRE
        ),
        # decoded values carry the type byte at index 0
        from_wire=tuple(
            (i + 1, _FROM_WIRE[f.wire]) for i, f in enumerate(layout.fields) if f.wire in _FROM_WIRE
        ),
        bool_indexes=tuple(i + 1 for i, f in enumerate(layout.fields) if f.wire == "bool"),
        wire_error=_compile_check(layout, ledger=False),
        field_error=_compile_check(layout, ledger=True),
    )


def _index(
    records: tuple[RecordLayout, ...],
) -> tuple[dict[int, RecordCodec], dict[type, RecordCodec]]:
    by_code: dict[int, RecordCodec] = {}
    by_class: dict[type, RecordCodec] = {}
    for layout in records:
        if layout.code in by_code or layout.cls in by_class:
            raise ValueError(f"record {layout.name}: duplicate type byte or class")
        codec = _compile(layout)
        by_code[layout.code] = by_class[layout.cls] = codec
    return by_code, by_class


BY_CODE, BY_CLASS = _index(RECORDS)
"""Compiled codecs by type byte and by transition class."""


def field_error(t: Transition) -> str | None:
    """None when every field of ``t`` is in range for the ledger, else what is wrong (the ledger
    rejects such a transition as ``malformed``)."""
    codec = BY_CLASS.get(type(t))
    if codec is None:
        return f"not a transition: {type(t).__name__}"
    return codec.field_error(t)


def record_sizes() -> dict[int, int]:
    """Record type -> total record length in bytes (type byte included)."""
    return {layout.code: layout.record_bytes for layout in RECORDS}


def render_record_table() -> str:
    """The record table of docs/PROTOCOL.md section 3, one row per record type."""
    lines = ["| type | record | payload | payload bytes |", "|---|---|---|---|"]
    for layout in RECORDS:
        note = f" ({layout.note})" if layout.note else ""
        lines.append(
            f"| 0x{layout.code:02x} | {layout.name} | `{layout.payload_spec()}`{note} "
            f"| {layout.payload_bytes} |"
        )
    return "\n".join(lines)
