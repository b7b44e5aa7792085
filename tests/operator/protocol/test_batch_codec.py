"""Batch data encoding: exact layout, round trips, and strict rejection of malformed data."""

import typing

import pytest
from hypothesis import given
from hypothesis import strategies as st

from isoperp.errors import ProtocolError
from isoperp.hashing import keccak256
from isoperp.ledger.model import checksum_address
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
from isoperp.protocol.batch import (
    assemble_batch,
    batch_hash,
    chunk_hashes,
    decode_batch,
    decode_entries,
    encode_batch,
    encode_record,
)
from isoperp.protocol.constants import BATCH_CHUNK_BYTES, MAX_BATCH_BYTES
from isoperp.protocol.records import RECORDS

ADDR = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
SIG = bytes(range(65))
ROOT = b"\x5a" * 32

u = lambda bits: st.integers(0, (1 << bits) - 1)  # noqa: E731
addresses = st.binary(min_size=20, max_size=20).map(checksum_address)
sigs = st.binary(min_size=65, max_size=65)
transitions = st.one_of(
    st.builds(Deposit, u(64), u(32), addresses, u(128), u(64)),
    st.builds(Withdraw, u(32), addresses, u(128), u(64), sigs),
    st.builds(MarginTransfer, u(32), u(16), st.integers(-(1 << 127), (1 << 127) - 1), u(64), sigs),
    st.builds(Fill, u(16), u(32), u(8), u(32), u(8), u(64), u(64), u(64)),
    st.builds(
        PlaceOrder, u(32), u(16), st.booleans(), u(64), u(64), u(8), u(8), u(64), u(64), sigs
    ),
    st.builds(CancelOrder, u(32), u(64), sigs),
    st.builds(OrderDone, u(32), u(8)),
    st.builds(PriceUpdate, u(16), u(64), u(64), sigs),
    st.builds(Funding, u(16), st.integers(-(1 << 31), (1 << 31) - 1), u(64)),
    st.builds(Liquidate, u(16), u(32), u(32), u(8), u(64), u(64), u(64)),
    st.builds(Backstop, u(16), u(32), u(64)),
    st.builds(Deleverage, u(16), u(32), u(32), u(64), u(64)),
    st.builds(ForcedWithdraw, u(64), u(32), addresses, u(128), u(64)),
    st.builds(ForcedExit, u(64), u(32), u(16), addresses, u(64)),
    st.builds(DepositRejected, u(64), u(32), addresses, u(128), u(64)),
    st.builds(FeeCollect, u(128)),
)


@given(st.lists(st.tuples(transitions, st.binary(min_size=32, max_size=32)), max_size=20))
def test_batch_round_trips(pairs):
    ts = [t for t, _ in pairs]
    roots = [root for _, root in pairs]
    data = encode_batch(ts, roots)
    assert decode_batch(data) == ts
    entries = decode_entries(data)
    assert [e.root_after for e in entries] == roots
    assert [e.record for e in entries] == [encode_record(t) for t in ts]
    # offset_0 = 5, offset_{i+1} = offset_i + len(record_i) + 32, the last entry ends the data
    offset = 5
    for i, e in enumerate(entries):
        assert (e.index, e.offset) == (i, offset)
        assert data[e.offset : e.offset + len(e.record)] == e.record
        offset += len(e.record) + 32
    assert offset == len(data)


def test_every_transition_has_one_record_layout():
    assert {r.cls for r in RECORDS} == set(typing.get_args(Transition))
    assert len(RECORDS) == len({r.code for r in RECORDS}) == len({r.name for r in RECORDS})


def test_fill_record_exact_bytes():
    record = encode_record(Fill(1, 7, 3, 9, 63, 1_000, 600_000, 1_700_000_000))
    assert record == (
        b"\x04"
        + (1).to_bytes(2, "big")
        + (7).to_bytes(4, "big")
        + b"\x03"
        + (9).to_bytes(4, "big")
        + b"\x3f"
        + (1_000).to_bytes(8, "big")
        + (600_000).to_bytes(8, "big")
        + (1_700_000_000).to_bytes(8, "big")
    )


def test_order_record_exact_bytes():
    order = PlaceOrder(5, 1, True, 300_000, 2_500, 1, 2, 70, 1_700_000_060, SIG)
    assert encode_record(order) == (
        b"\x05"
        + (5).to_bytes(4, "big")
        + (1).to_bytes(2, "big")
        + b"\x01"
        + (300_000).to_bytes(8, "big")
        + (2_500).to_bytes(8, "big")
        + b"\x01\x02"
        + (70).to_bytes(8, "big")
        + (1_700_000_060).to_bytes(8, "big")
        + SIG
    )


def test_funding_negative_rate_is_twos_complement():
    record = encode_record(Funding(0, -1, 5))
    assert record[3:7] == b"\xff" * 4
    data = encode_batch([Funding(0, -(1 << 31), 5)], [ROOT])
    assert decode_batch(data) == [Funding(0, -(1 << 31), 5)]


def test_deposit_record_exact_bytes():
    record = encode_record(Deposit(3, 7, ADDR, 1_000_000, 1_700_000_000))
    assert record == (
        b"\x01"
        + (3).to_bytes(8, "big")
        + (7).to_bytes(4, "big")
        + bytes.fromhex(ADDR[2:])
        + (1_000_000).to_bytes(16, "big")
        + (1_700_000_000).to_bytes(8, "big")
    )


def test_deposit_rejected_record_exact_bytes():
    fields = (3, 0xFFFFFF, ADDR, 1_000_000, 1_700_000_000)
    record = encode_record(DepositRejected(*fields))
    assert record == b"\x12" + encode_record(Deposit(*fields))[1:]  # a DEPOSIT's payload
    assert decode_batch(b"\x02\x00\x00\x00\x01" + record + b"\x07" * 32) == [
        DepositRejected(3, 0xFFFFFF, ADDR, 1_000_000, 1_700_000_000)
    ]


def test_fee_collect_record_exact_bytes():
    record = encode_record(FeeCollect((1 << 128) - 1))
    assert record == b"\x13" + b"\xff" * 16
    with pytest.raises(ProtocolError):
        encode_record(FeeCollect(1 << 128))


def test_forced_withdraw_record_exact_bytes():
    record = encode_record(ForcedWithdraw(9, 7, ADDR, 1_000_000, 1_700_000_000))
    assert record == (
        b"\x10"
        + (9).to_bytes(8, "big")
        + (7).to_bytes(4, "big")
        + bytes.fromhex(ADDR[2:])
        + (1_000_000).to_bytes(16, "big")
        + (1_700_000_000).to_bytes(8, "big")
    )


def test_forced_exit_record_exact_bytes():
    record = encode_record(ForcedExit(9, 7, 1, ADDR, 1_700_000_000))
    assert record == (
        b"\x11"
        + (9).to_bytes(8, "big")
        + (7).to_bytes(4, "big")
        + (1).to_bytes(2, "big")
        + bytes.fromhex(ADDR[2:])
        + (1_700_000_000).to_bytes(8, "big")
    )
    # decoding checksums the requester
    assert decode_batch(encode_batch([ForcedExit(9, 7, 1, ADDR.lower(), 5)], [ROOT])) == [
        ForcedExit(9, 7, 1, ADDR, 5)
    ]


def test_margin_transfer_negative_amount_is_twos_complement():
    record = encode_record(MarginTransfer(1, 0, -1, 0, SIG))
    assert record[7:23] == b"\xff" * 16


def test_empty_batch_is_version_and_zero_count():
    assert encode_batch([], []) == b"\x02\x00\x00\x00\x00"
    assert decode_batch(b"\x02\x00\x00\x00\x00") == []


def test_batch_entry_exact_bytes():
    fill = Fill(1, 7, 3, 9, 63, 1_000, 600_000, 1_700_000_000)
    record = encode_record(fill)
    assert encode_batch([fill, fill], [ROOT, b"\x01" * 32]) == (
        b"\x02\x00\x00\x00\x02" + record + ROOT + record + b"\x01" * 32
    )


def test_assemble_batch_needs_one_root_per_record():
    with pytest.raises(ProtocolError):
        assemble_batch([b"\x07" + b"\x00" * 5], [])
    with pytest.raises(ProtocolError):
        assemble_batch([b"\x07" + b"\x00" * 5], [b"\x00" * 31])


@pytest.mark.parametrize(
    "data, code",
    [
        (b"", "bad_batch"),
        (b"\x02\x00\x00\x00", "bad_batch"),  # no count
        (b"\x01\x00\x00\x00\x00", "bad_batch"),  # version 1 is not read any more
        (b"\x03\x00\x00\x00\x00", "bad_batch"),  # unknown version
        (b"\x02\x00\x00\x00\x01", "bad_batch"),  # count 1, no record
        (b"\x02\x00\x00\x00\x01\x7f", "bad_batch"),  # unknown record type
        (b"\x02\x00\x00\x00\x01\x07\x00\x00\x00\x01\x02", "bad_batch"),  # no state root
        (b"\x02\x00\x00\x00\x01\x07\x00\x00\x00\x01\x02" + b"\x00" * 31, "bad_batch"),
        (b"\x02\x00\x00\x00\x00\x00", "bad_batch"),  # trailing byte
    ],
)
def test_malformed_batch_rejected(data, code):
    with pytest.raises(ProtocolError) as info:
        decode_batch(data)
    assert info.value.code == code


def test_truncated_record_rejected():
    data = encode_batch([Deposit(0, 0, ADDR, 5, 0)], [ROOT])
    with pytest.raises(ProtocolError, match="truncated"):
        decode_batch(data[:-1])
    with pytest.raises(ProtocolError, match="truncated"):
        decode_batch(data[:-33])


def test_order_is_buy_must_be_boolean_byte():
    data = bytearray(encode_batch([PlaceOrder(0, 1, True, 5, 10, 0, 0, 1, 0, SIG)], [ROOT]))
    data[5 + 1 + 4 + 2] = 2  # the isBuy byte
    with pytest.raises(ProtocolError, match="flag"):
        decode_batch(bytes(data))


@pytest.mark.parametrize(
    "t",
    [
        Deposit(-1, 0, ADDR, 1, 0),
        Deposit(0, 1 << 32, ADDR, 1, 0),
        Deposit(0, 0, "0x1234", 1, 0),
        Withdraw(0, ADDR, 1 << 128, 0, SIG),
        Withdraw(0, ADDR, 1, 0, SIG[:64]),
        MarginTransfer(0, 0, 1 << 127, 0, SIG),
        Fill(0, 0, 0, 0, 0, True, 1, 0),  # bool is not an int here
        Fill(0, 0, 256, 0, 0, 1, 1, 0),  # a slot is one byte
        PlaceOrder(0, 0, 1, 1, 1, 0, 0, 0, 0, SIG),  # is_buy must be a bool
        PlaceOrder(0, 0, True, 1, 1, 0, 0, 0, 0, SIG[:64]),
        CancelOrder(0, 1 << 64, SIG),
        OrderDone(0, -1),
        PriceUpdate(0, 1, 1, b""),
        Funding(0, 1 << 31, 0),
        Liquidate(1 << 16, 0, 0, 0, 1, 1, 0),
        Backstop(0, 0, -1),
        Deleverage(0, 0, 0, 1 << 64, 0),
        ForcedWithdraw(1 << 64, 0, ADDR, 1, 0),
        ForcedWithdraw(0, 0, ADDR, 1 << 128, 0),
        ForcedWithdraw(0, 0, "0x12", 1, 0),
        ForcedExit(0, 1 << 32, 0, ADDR, 0),
        ForcedExit(0, 0, 1 << 16, ADDR, 0),
        ForcedExit(0, 0, 0, ADDR, -1),
    ],
)
def test_out_of_range_fields_rejected(t):
    with pytest.raises(ProtocolError):
        encode_record(t)


def test_oversized_batch_rejected():
    fill = Fill(0, 1, 0, 2, 0, 1, 1, 0)
    count = MAX_BATCH_BYTES // (len(encode_record(fill)) + 32) + 1
    with pytest.raises(ProtocolError) as info:
        encode_batch([fill] * count, [ROOT] * count)
    assert info.value.code == "batch_too_large"
    with pytest.raises(ProtocolError):
        decode_batch(b"\x02" + b"\x00" * MAX_BATCH_BYTES)


@pytest.mark.parametrize("length", [0, 1, 4095, 4096, 4097, 8192, 131_072])
def test_batch_hash_is_hash_of_chunk_hashes(length):
    data = bytes((i * 31 + 7) % 256 for i in range(length))
    chunks = [data[i : i + BATCH_CHUNK_BYTES] for i in range(0, length, BATCH_CHUNK_BYTES)]
    assert BATCH_CHUNK_BYTES == 4096
    assert all(len(c) == 4096 for c in chunks[:-1]) and (length == 0 or 0 < len(chunks[-1]) <= 4096)
    assert chunk_hashes(data) == [keccak256(c) for c in chunks]
    assert batch_hash(data) == keccak256(b"".join(keccak256(c) for c in chunks))
    assert len(chunk_hashes(data)) <= 32


def test_batch_hash_depends_on_every_chunk():
    data = bytearray(9000)
    base = batch_hash(bytes(data))
    for at in (0, 4095, 4096, 8999):
        changed = bytearray(data)
        changed[at] = 1
        assert batch_hash(bytes(changed)) != base
