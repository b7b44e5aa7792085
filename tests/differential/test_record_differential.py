"""Python record codec (protocol.records / protocol.batch) against the generated Solidity RecordLib.

For every record type, random valid transitions are encoded with ``encode_record``, placed at a
random position inside a v2 batch (``version ‖ count ‖ (record ‖ stateRootAfter)*``) and decoded by
RecordLib at that offset: the decoded struct must be the transition's fields (a sig65 as r, s, v).
Then the reverts: a wrong type byte, a record cut short or beyond the data, a bool byte of 2, and
recordLength of an unknown type."""

from __future__ import annotations

import random
from typing import Any

import pytest
from call_reverts import revert_error

from isoperp.ledger.model import checksum_address
from isoperp.ledger.transitions import (
    Fill,
    Funding,
    MarginTransfer,
    PlaceOrder,
    Transition,
)
from isoperp.protocol.batch import HEADER_BYTES, ROOT_BYTES, assemble_batch, encode_record
from isoperp.protocol.records import BY_CLASS, BY_CODE, RECORDS, RecordLayout
from isoperp.protocol.solidity import sol_fields

CASES_PER_TYPE = 20
_ORDER_CODE = BY_CLASS[PlaceOrder].layout.code
_FILL_CODE = BY_CLASS[Fill].layout.code


@pytest.fixture(scope="module")
def records(project, deployer):
    return deployer.deploy(project.RecordHarness)


def _value(rng: random.Random, wire: str, below: int | None) -> Any:
    if wire == "bool":
        return rng.random() < 0.5
    if wire == "address":
        return checksum_address(rng.randbytes(20))
    if wire == "sig65":
        return rng.randbytes(65)
    bits = 8 * {"u8": 1, "u16": 2, "u32": 4, "u64": 8, "u128": 16, "i32": 4, "i128": 16}[wire]
    if wire.startswith("i"):
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        lo, hi = 0, (1 << bits) - 1
    if below is not None:
        hi = min(hi, below - 1)
    # the extremes a third of the time: sign extension and full-width reads
    return rng.choice((lo, hi)) if rng.random() < 0.3 else rng.randint(lo, hi)


def random_transition(rng: random.Random, layout: RecordLayout) -> Transition:
    values = [_value(rng, f.wire, f.below) for f in layout.fields]
    transition: Transition = layout.cls(*values)
    return transition


def expected_struct(layout: RecordLayout, t: Transition) -> tuple[Any, ...]:
    """The RecordLib struct of ``t``: its fields in wire order, a sig65 split into r, s, v."""
    out: list[Any] = []
    for f in layout.fields:
        value = getattr(t, f.attr)
        if f.wire == "sig65":
            out += [value[:32], value[32:64], value[64]]
        else:
            out.append(value)
    return tuple(out)


def decoded_struct(layout: RecordLayout, result: Any) -> tuple[Any, ...]:
    """The harness's return value as a tuple comparable with ``expected_struct``."""
    out: list[Any] = []
    for name, sol, _, _ in sol_fields(layout):
        value = getattr(result, name)
        out.append(bytes(value) if sol == "bytes32" else value)
    return tuple(out)


def in_batch(rng: random.Random, record: bytes) -> tuple[bytes, int]:
    """A v2 batch holding ``record`` among random other records, and the offset of its type
    byte."""
    before = [
        encode_record(random_transition(rng, rng.choice(RECORDS))) for _ in range(rng.randint(0, 3))
    ]
    after = [
        encode_record(random_transition(rng, rng.choice(RECORDS))) for _ in range(rng.randint(0, 2))
    ]
    all_records = [*before, record, *after]
    data = assemble_batch(all_records, [rng.randbytes(ROOT_BYTES) for _ in all_records])
    offset = HEADER_BYTES + sum(len(r) + ROOT_BYTES for r in before)
    return data, offset


@pytest.mark.parametrize("layout", RECORDS, ids=lambda layout: layout.name)
def test_decode_random_record_in_batch_succeeds(records, layout):
    rng = random.Random(f"record-{layout.code}")
    decode = getattr(records, f"decode{layout.name}")
    for _ in range(CASES_PER_TYPE):
        t = random_transition(rng, layout)
        record = encode_record(t)
        data, offset = in_batch(rng, record)
        assert data[offset : offset + len(record)] == record
        assert BY_CODE[layout.code].decode(data, offset) == t  # the Python reference
        assert decoded_struct(layout, decode(data, offset)) == expected_struct(layout, t), t


@pytest.mark.parametrize("layout", RECORDS, ids=lambda layout: layout.name)
def test_decode_record_filling_the_data_succeeds(records, layout):
    # the last byte of the record is the last byte of the data: the bound is inclusive
    t = random_transition(random.Random(layout.code), layout)
    record = encode_record(t)
    decode = getattr(records, f"decode{layout.name}")
    assert decoded_struct(layout, decode(record, 0)) == expected_struct(layout, t)
    assert decoded_struct(layout, decode(b"\xff" * 7 + record, 7)) == expected_struct(layout, t)


def test_decode_negative_margin_transfer_and_funding_succeeds(records):
    sig = bytes(range(65))
    mt = MarginTransfer(account_id=7, market_id=2, amount=-(10**18), nonce=3, signature=sig)
    got = records.decodeMarginTransfer(encode_record(mt), 0)
    assert got.amount == -(10**18)
    assert (bytes(got.signatureR), bytes(got.signatureS), got.signatureV) == (
        sig[:32],
        sig[32:64],
        64,
    )
    for rate in (-1, -(1 << 31), (1 << 31) - 1):
        funding = Funding(market_id=1, rate_ppm=rate, timestamp=1_700_000_000)
        assert records.decodeFunding(encode_record(funding), 0).ratePpm == rate


def test_decode_wrong_type_byte_reverts(records):
    rng = random.Random(1)
    fill = encode_record(random_transition(rng, BY_CODE[_FILL_CODE].layout))
    data, offset = in_batch(rng, fill)
    assert revert_error(records, "decodeOrder", data, offset) == (
        "RecordLib_WrongType",
        {"expected": _ORDER_CODE, "got": _FILL_CODE},
    )
    # checked before the length: a wrong type in data cut short is still a wrong type
    assert revert_error(records, "decodeFill", b"\xee" + fill[1:5], 0) == (
        "RecordLib_WrongType",
        {"expected": _FILL_CODE, "got": 0xEE},
    )


@pytest.mark.parametrize("layout", RECORDS, ids=lambda layout: layout.name)
def test_decode_truncated_record_reverts(records, layout):
    record = encode_record(random_transition(random.Random(layout.code), layout))
    length = layout.record_bytes
    method = f"decode{layout.name}"
    assert revert_error(records, method, record[:-1], 0) == (
        "RecordLib_OutOfBounds",
        {"offset": 0, "length": length},
    )
    data, offset = in_batch(random.Random(layout.code), record)
    # the batch cut one byte into the record's last field
    assert revert_error(records, method, data[: offset + length - 1], offset) == (
        "RecordLib_OutOfBounds",
        {"offset": offset, "length": length},
    )
    # only the type byte is left
    assert revert_error(records, method, b"\x00" * 3 + record[:1], 3) == (
        "RecordLib_OutOfBounds",
        {"offset": 3, "length": length},
    )


@pytest.mark.parametrize("offset", [0, 1, 2**255])
def test_decode_offset_beyond_data_reverts(records, offset):
    assert revert_error(records, "decodeFill", b"\x04"[:offset], offset) == (
        "RecordLib_OutOfBounds",
        {"offset": offset, "length": BY_CODE[_FILL_CODE].layout.record_bytes},
    )


def test_decode_bool_byte_two_reverts(records):
    rng = random.Random(2)
    order = encode_record(random_transition(rng, BY_CODE[_ORDER_CODE].layout))
    at = 1 + 4 + 2  # type byte, accountId, marketId: the isBuy byte
    bad = order[:at] + b"\x02" + order[at + 1 :]
    assert isinstance(BY_CODE[_ORDER_CODE].decode(bad, 0), str)  # Python rejects it too
    data, offset = in_batch(rng, bad)
    assert revert_error(records, "decodeOrder", data, offset) == (
        "RecordLib_BadBool",
        {"offset": offset + at},
    )


def test_record_length_succeeds(records):
    for layout in RECORDS:
        assert records.recordLength(layout.code) == layout.record_bytes


@pytest.mark.parametrize("code", [0x00, 0x0D, 0x0F, 0x14, 0x1F, 0x20, 0xFF])
def test_record_length_unknown_type_reverts(records, code):
    assert code not in BY_CODE
    assert revert_error(records, "recordLength", code) == (
        "RecordLib_UnknownType",
        {"recordType": code},
    )


# Measured 1451 (Fill) and 2067 (Order) with solc 0.8.28, optimizer 200 runs: the ceilings leave
# ~10% headroom so that a decoder that stops being calldataload + shift fails here.
@pytest.mark.parametrize(("name", "ceiling"), [("Fill", 1600), ("Order", 2300)])
def test_decode_gas_below_ceiling_succeeds(records, name, ceiling):
    layout = next(layout for layout in RECORDS if layout.name == name)
    rng = random.Random(name)
    data, offset = in_batch(rng, encode_record(random_transition(rng, layout)))
    assert getattr(records, f"gasOfDecode{name}")(data, offset) <= ceiling
