"""Batch data encoding (docs/PROTOCOL.md, section 3).

``batch = version:u8 ‖ count:u32 ‖ record*``, ``record = type:u8 ‖ fixed-length payload``. Fixed
widths, big-endian, signed fields two's complement. Decoding is strict: unknown versions and record
types, truncated or trailing bytes, and out-of-range values raise ProtocolError."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from isoperp.errors import ProtocolError
from isoperp.ledger.model import eip55_from_lower_hex
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
    BATCH_VERSION,
    MAX_BATCH_BYTES,
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

HEADER_BYTES: Final = 5
SIGNATURE_BYTES: Final = 65
_UINT_BOUND: Final = {width: 1 << (8 * width) for width in (1, 2, 4, 8, 16)}


def _uint(value: int, width: int, name: str) -> bytes:
    if type(value) is int and 0 <= value < _UINT_BOUND.get(width, 0):
        return value.to_bytes(width, "big")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < (1 << (8 * width)):
        raise ProtocolError(f"{name}={value!r} does not fit uint{8 * width}", code="bad_record")
    return value.to_bytes(width, "big")


def _int(value: int, width: int, name: str) -> bytes:
    bound = 1 << (8 * width - 1)
    if isinstance(value, bool) or not isinstance(value, int) or not -bound <= value < bound:
        raise ProtocolError(f"{name}={value!r} does not fit int{8 * width}", code="bad_record")
    return value.to_bytes(width, "big", signed=True)


def _address(value: str, name: str) -> bytes:
    try:
        raw = bytes.fromhex(value.removeprefix("0x"))
    except (ValueError, AttributeError) as exc:
        raise ProtocolError(f"{name}={value!r} is not an address", code="bad_record") from exc
    if len(raw) != 20:
        raise ProtocolError(f"{name}={value!r} is not a 20-byte address", code="bad_record")
    return raw


def _signature(value: bytes) -> bytes:
    if not isinstance(value, bytes) or len(value) != SIGNATURE_BYTES:
        raise ProtocolError("signature must be 65 bytes", code="bad_record")
    return value


def _flag(value: bool, name: str) -> bytes:
    if type(value) is not bool:
        raise ProtocolError(f"{name}={value!r} is not a bool", code="bad_record")
    return b"\x01" if value else b"\x00"


def _encode_account_requests(t: Transition) -> bytes | None:
    if isinstance(t, Deposit):
        return (
            bytes([RECORD_DEPOSIT])
            + _uint(t.deposit_index, 8, "deposit_index")
            + _uint(t.account_id, 4, "account_id")
            + _address(t.owner, "owner")
            + _uint(t.amount, 16, "amount")
            + _uint(t.timestamp, 8, "timestamp")
        )
    if isinstance(t, Withdraw):
        return (
            bytes([RECORD_WITHDRAW])
            + _uint(t.account_id, 4, "account_id")
            + _address(t.recipient, "recipient")
            + _uint(t.amount, 16, "amount")
            + _uint(t.nonce, 8, "nonce")
            + _signature(t.signature)
        )
    if isinstance(t, MarginTransfer):
        return (
            bytes([RECORD_MARGIN_TRANSFER])
            + _uint(t.account_id, 4, "account_id")
            + _uint(t.market_id, 2, "market_id")
            + _int(t.amount, 16, "amount")
            + _uint(t.nonce, 8, "nonce")
            + _signature(t.signature)
        )
    if isinstance(t, DepositRejected):  # the payload of a DEPOSIT
        return (
            bytes([RECORD_DEPOSIT_REJECTED])
            + _uint(t.deposit_index, 8, "deposit_index")
            + _uint(t.account_id, 4, "account_id")
            + _address(t.owner, "owner")
            + _uint(t.amount, 16, "amount")
            + _uint(t.timestamp, 8, "timestamp")
        )
    if isinstance(t, FeeCollect):
        return bytes([RECORD_FEE_COLLECT]) + _uint(t.amount, 16, "amount")
    return None


def _encode_orders(t: Transition) -> bytes | None:
    if isinstance(t, Fill):
        return (
            bytes([RECORD_FILL])
            + _uint(t.market_id, 2, "market_id")
            + _uint(t.maker_id, 4, "maker_id")
            + _uint(t.maker_slot, 1, "maker_slot")
            + _uint(t.taker_id, 4, "taker_id")
            + _uint(t.taker_slot, 1, "taker_slot")
            + _uint(t.size, 8, "size")
            + _uint(t.price, 8, "price")
            + _uint(t.timestamp, 8, "timestamp")
        )
    if isinstance(t, PlaceOrder):
        return (
            bytes([RECORD_ORDER])
            + _uint(t.account_id, 4, "account_id")
            + _uint(t.market_id, 2, "market_id")
            + _flag(t.is_buy, "is_buy")
            + _uint(t.price, 8, "price")
            + _uint(t.size, 8, "size")
            + _uint(t.time_in_force, 1, "time_in_force")
            + _uint(t.flags, 1, "flags")
            + _uint(t.nonce, 8, "nonce")
            + _uint(t.expiry, 8, "expiry")
            + _signature(t.signature)
        )
    if isinstance(t, CancelOrder):
        return (
            bytes([RECORD_CANCEL])
            + _uint(t.account_id, 4, "account_id")
            + _uint(t.nonce, 8, "nonce")
            + _signature(t.signature)
        )
    if isinstance(t, OrderDone):
        return bytes([RECORD_ORDER_DONE]) + _uint(t.account_id, 4, "account_id") + _uint(
            t.slot, 1, "slot"
        )
    return None


def _encode_risk(t: Transition) -> bytes | None:
    if isinstance(t, PriceUpdate):
        return (
            bytes([RECORD_PRICE])
            + _uint(t.market_id, 2, "market_id")
            + _uint(t.price, 8, "price")
            + _uint(t.timestamp, 8, "timestamp")
            + _signature(t.signature)
        )
    if isinstance(t, Funding):
        return (
            bytes([RECORD_FUNDING])
            + _uint(t.market_id, 2, "market_id")
            + _int(t.rate_ppm, 4, "rate_ppm")
            + _uint(t.timestamp, 8, "timestamp")
        )
    if isinstance(t, Liquidate):
        return (
            bytes([RECORD_LIQUIDATE])
            + _uint(t.market_id, 2, "market_id")
            + _uint(t.account_id, 4, "account_id")
            + _uint(t.maker_id, 4, "maker_id")
            + _uint(t.maker_slot, 1, "maker_slot")
            + _uint(t.size, 8, "size")
            + _uint(t.price, 8, "price")
            + _uint(t.timestamp, 8, "timestamp")
        )
    if isinstance(t, Backstop):
        return (
            bytes([RECORD_BACKSTOP])
            + _uint(t.market_id, 2, "market_id")
            + _uint(t.account_id, 4, "account_id")
            + _uint(t.timestamp, 8, "timestamp")
        )
    if isinstance(t, Deleverage):
        return (
            bytes([RECORD_DELEVERAGE])
            + _uint(t.market_id, 2, "market_id")
            + _uint(t.account_id, 4, "account_id")
            + _uint(t.counterparty_id, 4, "counterparty_id")
            + _uint(t.size, 8, "size")
            + _uint(t.timestamp, 8, "timestamp")
        )
    return None


def _encode_forced(t: Transition) -> bytes | None:
    if isinstance(t, ForcedWithdraw):
        return (
            bytes([RECORD_FORCED_WITHDRAW])
            + _uint(t.forced_index, 8, "forced_index")
            + _uint(t.account_id, 4, "account_id")
            + _address(t.requester, "requester")
            + _uint(t.amount, 16, "amount")
            + _uint(t.timestamp, 8, "timestamp")
        )
    if isinstance(t, ForcedExit):
        return (
            bytes([RECORD_FORCED_EXIT])
            + _uint(t.forced_index, 8, "forced_index")
            + _uint(t.account_id, 4, "account_id")
            + _uint(t.market_id, 2, "market_id")
            + _address(t.requester, "requester")
            + _uint(t.timestamp, 8, "timestamp")
        )
    return None


def encode_record(t: Transition) -> bytes:
    """The record bytes of one transition (type byte included)."""
    for encode in (_encode_orders, _encode_account_requests, _encode_risk, _encode_forced):
        record = encode(t)
        if record is not None:
            return record
    raise ProtocolError(f"not a transition: {type(t).__name__}", code="bad_record")


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise ProtocolError(f"batch truncated at byte {self.pos}", code="bad_batch")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def int(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big", signed=True)

    def address(self) -> str:
        return eip55_from_lower_hex(self.take(20).hex().encode("ascii"))

    def flag(self) -> bool:
        value = self.uint(1)
        if value > 1:
            raise ProtocolError(f"flag byte must be 0 or 1, got {value}", code="bad_batch")
        return value == 1


def _read_deposit(r: _Reader) -> Deposit:
    return Deposit(r.uint(8), r.uint(4), r.address(), r.uint(16), r.uint(8))


def _read_deposit_rejected(r: _Reader) -> DepositRejected:
    return DepositRejected(r.uint(8), r.uint(4), r.address(), r.uint(16), r.uint(8))


def _read_fee_collect(r: _Reader) -> FeeCollect:
    return FeeCollect(r.uint(16))


def _read_withdraw(r: _Reader) -> Withdraw:
    return Withdraw(r.uint(4), r.address(), r.uint(16), r.uint(8), r.take(SIGNATURE_BYTES))


def _read_margin_transfer(r: _Reader) -> MarginTransfer:
    return MarginTransfer(r.uint(4), r.uint(2), r.int(16), r.uint(8), r.take(SIGNATURE_BYTES))


def _read_fill(r: _Reader) -> Fill:
    return Fill(
        r.uint(2), r.uint(4), r.uint(1), r.uint(4), r.uint(1), r.uint(8), r.uint(8), r.uint(8)
    )


def _read_order(r: _Reader) -> PlaceOrder:
    return PlaceOrder(
        r.uint(4),
        r.uint(2),
        r.flag(),
        r.uint(8),
        r.uint(8),
        r.uint(1),
        r.uint(1),
        r.uint(8),
        r.uint(8),
        r.take(SIGNATURE_BYTES),
    )


def _read_cancel(r: _Reader) -> CancelOrder:
    return CancelOrder(r.uint(4), r.uint(8), r.take(SIGNATURE_BYTES))


def _read_order_done(r: _Reader) -> OrderDone:
    return OrderDone(r.uint(4), r.uint(1))


def _read_price(r: _Reader) -> PriceUpdate:
    return PriceUpdate(r.uint(2), r.uint(8), r.uint(8), r.take(SIGNATURE_BYTES))


def _read_funding(r: _Reader) -> Funding:
    return Funding(r.uint(2), r.int(4), r.uint(8))


def _read_liquidate(r: _Reader) -> Liquidate:
    return Liquidate(r.uint(2), r.uint(4), r.uint(4), r.uint(1), r.uint(8), r.uint(8), r.uint(8))


def _read_backstop(r: _Reader) -> Backstop:
    return Backstop(r.uint(2), r.uint(4), r.uint(8))


def _read_deleverage(r: _Reader) -> Deleverage:
    return Deleverage(r.uint(2), r.uint(4), r.uint(4), r.uint(8), r.uint(8))


def _read_forced_withdraw(r: _Reader) -> ForcedWithdraw:
    return ForcedWithdraw(r.uint(8), r.uint(4), r.address(), r.uint(16), r.uint(8))


def _read_forced_exit(r: _Reader) -> ForcedExit:
    return ForcedExit(r.uint(8), r.uint(4), r.uint(2), r.address(), r.uint(8))


_READERS: Final[dict[int, Callable[[_Reader], Transition]]] = {
    RECORD_DEPOSIT: _read_deposit,
    RECORD_WITHDRAW: _read_withdraw,
    RECORD_MARGIN_TRANSFER: _read_margin_transfer,
    RECORD_FILL: _read_fill,
    RECORD_ORDER: _read_order,
    RECORD_CANCEL: _read_cancel,
    RECORD_ORDER_DONE: _read_order_done,
    RECORD_PRICE: _read_price,
    RECORD_FUNDING: _read_funding,
    RECORD_LIQUIDATE: _read_liquidate,
    RECORD_BACKSTOP: _read_backstop,
    RECORD_DELEVERAGE: _read_deleverage,
    RECORD_FORCED_WITHDRAW: _read_forced_withdraw,
    RECORD_FORCED_EXIT: _read_forced_exit,
    RECORD_DEPOSIT_REJECTED: _read_deposit_rejected,
    RECORD_FEE_COLLECT: _read_fee_collect,
}


def assemble_batch(records: Sequence[bytes]) -> bytes:
    """``version ‖ count ‖ records`` from already encoded records."""
    return bytes([BATCH_VERSION]) + _uint(len(records), 4, "count") + b"".join(records)


def encode_batch(transitions: Sequence[Transition]) -> bytes:
    """The batch data of ``transitions``; raises ProtocolError beyond MAX_BATCH_BYTES."""
    data = assemble_batch([encode_record(t) for t in transitions])
    if len(data) > MAX_BATCH_BYTES:
        raise ProtocolError(
            f"batch is {len(data)} bytes, the maximum is {MAX_BATCH_BYTES}", code="batch_too_large"
        )
    return data


def decode_batch(data: bytes) -> list[Transition]:
    """Parses batch data back into transitions (strict)."""
    if len(data) > MAX_BATCH_BYTES:
        raise ProtocolError(f"batch is {len(data)} bytes, over {MAX_BATCH_BYTES}", code="bad_batch")
    reader = _Reader(data, 0)
    version = reader.uint(1)
    if version != BATCH_VERSION:
        raise ProtocolError(f"unknown batch version {version}", code="bad_batch")
    count = reader.uint(4)
    out: list[Transition] = []
    for i in range(count):
        kind = reader.uint(1)
        read = _READERS.get(kind)
        if read is None:
            raise ProtocolError(f"record {i}: unknown record type {kind:#04x}", code="bad_batch")
        out.append(read(reader))
    if reader.pos != len(data):
        raise ProtocolError(
            f"{len(data) - reader.pos} trailing bytes after the records", code="bad_batch"
        )
    return out


def record_sizes() -> dict[int, int]:
    """Record type -> total record length in bytes (type byte included), for docs and tests."""
    sig = b"\x00" * SIGNATURE_BYTES
    zero = "0x" + "00" * 20
    samples: list[Transition] = [
        Deposit(0, 0, zero, 0, 0),
        Withdraw(0, zero, 0, 0, sig),
        MarginTransfer(0, 0, 0, 0, sig),
        Fill(0, 0, 0, 0, 0, 0, 0, 0),
        PlaceOrder(0, 0, False, 0, 0, 0, 0, 0, 0, sig),
        CancelOrder(0, 0, sig),
        OrderDone(0, 0),
        PriceUpdate(0, 0, 0, sig),
        Funding(0, 0, 0),
        Liquidate(0, 0, 0, 0, 0, 0, 0),
        Backstop(0, 0, 0),
        Deleverage(0, 0, 0, 0, 0),
        ForcedWithdraw(0, 0, zero, 0, 0),
        ForcedExit(0, 0, 0, zero, 0),
        DepositRejected(0, 0, zero, 0, 0),
        FeeCollect(0),
    ]
    return {encode_record(t)[0]: len(encode_record(t)) for t in samples}
