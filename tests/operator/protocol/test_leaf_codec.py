"""Leaf index layout and leaf encodings, held against eth_abi.encode (the Solidity abi.encode)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from eth_abi import encode as abi_encode
from hypothesis import given
from hypothesis import strategies as st

from isoperp.errors import ProtocolError
from isoperp.hashing import keccak256
from isoperp.ledger.markets import BTC_USD, DEVNET_MARKETS
from isoperp.ledger.model import (
    Account,
    Exchange,
    Leaf,
    Market,
    Order,
    Position,
    checksum_address,
)
from isoperp.protocol.leaves import (
    EXCHANGE_INDEX,
    account_index,
    decode_leaf,
    encode_account,
    encode_exchange,
    encode_leaf,
    encode_market,
    encode_order,
    encode_position,
    index_of,
    leaf_hash,
    leaf_index,
    market_index,
    order_index,
    position_index,
    split_index,
)

ACCOUNT_TYPES = ["uint8", "uint32", "address", "uint128", "uint64"]
POSITION_TYPES = ["uint8", "uint32", "uint16", "int64", "int128", "int128", "int128"]
MARKET_TYPES = [
    "uint8",
    "uint16",
    "uint64",
    "uint64",
    "int128",
    "uint64",
    "uint32",
    "uint32",
    "int8",
    "int32",
    "int32",
    "uint64",
    "uint64",
    "uint64",
    "uint64",
]
EXCHANGE_TYPES = [
    "uint8",
    "int128",
    "uint128",
    "uint32",
    "uint64",
    "uint64",
    "bytes32",
    "uint64",
    "uint128",
]
ORDER_TYPES = [
    "uint8",
    "uint32",
    "uint8",
    "uint64",
    "uint16",
    "bool",
    "uint64",
    "uint64",
    "uint64",
    "uint8",
    "uint8",
    "uint64",
]


def uint(bits: int) -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from([0, 1, (1 << bits) - 1]), st.integers(0, (1 << bits) - 1))


def sint(bits: int) -> st.SearchStrategy[int]:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return st.one_of(st.sampled_from([lo, -1, 0, 1, hi]), st.integers(lo, hi))


addresses = st.binary(min_size=20, max_size=20).map(checksum_address)
account_ids = st.one_of(st.sampled_from([0, (1 << 24) - 1]), st.integers(0, (1 << 24) - 1))
market_ids = st.integers(0, 63)

accounts = st.builds(Account, account_ids, addresses, uint(128), uint(64))
positions = st.builds(Position, account_ids, market_ids, sint(64), sint(128), sint(128), sint(128))
exchanges = st.builds(
    Exchange,
    sint(128),
    uint(128),
    st.integers(0, 1 << 24),
    uint(64),
    uint(64),
    st.binary(min_size=32, max_size=32),
    st.integers(0, 1 << 32),
    uint(128),
)


@st.composite
def markets(draw: st.DrawFn) -> Market:
    imf = draw(st.integers(0, 1_000_000))
    return Market(
        market_id=draw(market_ids),
        mark_price=draw(uint(64)),
        mark_time=draw(uint(64)),
        funding_index=draw(sint(128)),
        funding_time=draw(uint(64)),
        imf_ppm=imf,
        mmf_ppm=draw(st.integers(0, imf)),
        notional_exp=draw(sint(8)),
        maker_fee_ppm=draw(st.integers(-1_000_000, 1_000_000)),
        taker_fee_ppm=draw(st.integers(-1_000_000, 1_000_000)),
        min_size=draw(uint(64)),
        size_step=draw(st.integers(1, (1 << 64) - 1)),
        price_tick=draw(st.integers(1, (1 << 64) - 1)),
        open_interest=draw(uint(64)),
    )


@st.composite
def orders(draw: st.DrawFn) -> Order:
    nonce = draw(uint(64))
    size = draw(uint(64))
    return Order(
        account_id=draw(account_ids),
        slot=nonce % 64,
        nonce=nonce,
        market_id=draw(market_ids),
        is_buy=draw(st.booleans()),
        price=draw(uint(64)),
        size=size,
        filled=draw(st.integers(0, size)),
        time_in_force=draw(st.integers(0, 2)),
        flags=draw(st.integers(0, 3)),
        expiry=draw(uint(64)),
    )


def _fields(leaf: Leaf) -> list[Any]:
    return [getattr(leaf, f.name) for f in dataclasses.fields(leaf) if f.name != "symbol"]


# -- index layout ---------------------------------------------------------------------------------


def test_index_helpers_layout_values_match_spec() -> None:
    assert account_index(0) == 0
    assert account_index(5) == 5 << 6
    assert account_index((1 << 24) - 1) == ((1 << 24) - 1) << 6
    assert position_index(5, 1) == 1 << 30 | 5 << 6 | 1
    assert position_index((1 << 24) - 1, 63) == (1 << 31) - 1
    assert market_index(0) == 3 << 30
    assert market_index(1) == 3 << 30 | 1
    assert EXCHANGE_INDEX == 3 << 30 | 1 << 6
    assert order_index(2, 7) == 2 << 30 | 2 << 6 | 7
    assert leaf_index(3, (1 << 24) - 1, 63) == (1 << 32) - 1


@pytest.mark.parametrize(
    "call",
    [
        lambda: account_index(1 << 24),
        lambda: account_index(-1),
        lambda: account_index(True),
        lambda: position_index(1 << 24, 0),
        lambda: position_index(0, 64),
        lambda: market_index(64),
        lambda: market_index(-1),
        lambda: leaf_index(4, 0, 0),
        lambda: leaf_index(0, 0, 64),
        lambda: split_index(1 << 32),
        lambda: split_index(-1),
    ],
)
def test_index_helpers_out_of_range_raise_protocol_error(call: Any) -> None:
    with pytest.raises(ProtocolError):
        call()


_INDEX_EDGES = [0, 1, 62, 63, 64, (1 << 24) - 1, 1 << 24, -1, 1 << 40, True, False, 1.0, None]


def _index_or_error(fn: Any, *args: object) -> object:
    try:
        return fn(*args)
    except ProtocolError:
        return "error"


def test_index_helpers_fast_paths_agree_with_leaf_index() -> None:
    """Each helper's fast path gives leaf_index's answer, or its error, for edge ids."""
    for a in _INDEX_EDGES:
        assert _index_or_error(account_index, a) == _index_or_error(leaf_index, 0, a, 0)
        assert _index_or_error(market_index, a) == _index_or_error(leaf_index, 3, 0, a)
        for b in _INDEX_EDGES:
            assert _index_or_error(position_index, a, b) == _index_or_error(leaf_index, 1, a, b)
            assert _index_or_error(order_index, a, b) == _index_or_error(leaf_index, 2, a, b)


@given(st.integers(0, 3), account_ids, market_ids)
def test_split_index_random_inverts_leaf_index(kind: int, account: int, sub: int) -> None:
    assert split_index(leaf_index(kind, account, sub)) == (kind, account, sub)


def test_index_of_each_leaf_kind_matches_helpers() -> None:
    owner = checksum_address(b"\x11" * 20)
    assert index_of(Account(9, owner, 0, 0)) == account_index(9)
    assert index_of(Position(9, 1, 0, 1, 0, 0)) == position_index(9, 1)
    assert index_of(BTC_USD) == market_index(0)
    assert index_of(Exchange.genesis()) == EXCHANGE_INDEX
    assert index_of(Order.tombstone(9, 130)) == order_index(9, 2)


# -- encodings against eth_abi --------------------------------------------------------------------


@given(accounts)
def test_encode_account_random_matches_eth_abi(a: Account) -> None:
    expected = abi_encode(ACCOUNT_TYPES, [1, *_fields(a)])
    assert encode_account(a) == expected == encode_leaf(a)
    assert decode_leaf(expected) == a


@given(positions)
def test_encode_position_random_matches_eth_abi(p: Position) -> None:
    expected = abi_encode(POSITION_TYPES, [2, *_fields(p)])
    assert encode_position(p) == expected == encode_leaf(p)
    assert decode_leaf(expected) == p


@given(markets())
def test_encode_market_random_matches_eth_abi(m: Market) -> None:
    expected = abi_encode(MARKET_TYPES, [3, *_fields(m)])
    assert encode_market(m) == expected == encode_leaf(m)
    assert decode_leaf(expected) == m


@given(exchanges)
def test_encode_exchange_random_matches_eth_abi(e: Exchange) -> None:
    expected = abi_encode(EXCHANGE_TYPES, [4, *_fields(e)])
    assert encode_exchange(e) == expected == encode_leaf(e)
    assert decode_leaf(expected) == e


@given(orders())
def test_encode_order_random_matches_eth_abi(o: Order) -> None:
    expected = abi_encode(ORDER_TYPES, [5, *_fields(o)])
    assert encode_order(o) == expected == encode_leaf(o)
    assert decode_leaf(expected) == o


def test_encode_order_exact_words() -> None:
    o = Order(7, 5, 69, 1, True, 300_000, 2_500, 1_000, 1, 2, 1_700_000_000)
    words = [int.from_bytes(encode_order(o)[i : i + 32], "big") for i in range(0, 12 * 32, 32)]
    assert words == [5, 7, 5, 69, 1, 1, 300_000, 2_500, 1_000, 1, 2, 1_700_000_000]
    assert len(encode_order(Order.tombstone(7, 69))) == 12 * 32


def test_encode_extremes_match_eth_abi() -> None:
    owner = checksum_address(b"\xff" * 20)
    a = Account((1 << 24) - 1, owner, (1 << 128) - 1, (1 << 64) - 1)
    assert encode_account(a) == abi_encode(ACCOUNT_TYPES, [1, *_fields(a)])
    p_min = Position(0, 0, -(1 << 63), -(1 << 127), -(1 << 127), -(1 << 127))
    p_max = Position(0, 63, (1 << 63) - 1, (1 << 127) - 1, (1 << 127) - 1, (1 << 127) - 1)
    for p in (p_min, p_max):
        assert encode_position(p) == abi_encode(POSITION_TYPES, [2, *_fields(p)])
    m = dataclasses.replace(
        BTC_USD,
        funding_index=-(1 << 127),
        notional_exp=-128,
        maker_fee_ppm=-1_000_000,
        mark_price=(1 << 64) - 1,
    )
    assert encode_market(m) == abi_encode(MARKET_TYPES, [3, *_fields(m)])
    e = Exchange(
        -(1 << 127),
        (1 << 128) - 1,
        1 << 24,
        (1 << 64) - 1,
        (1 << 64) - 1,
        b"\xff" * 32,
        1 << 32,
        (1 << 128) - 1,
    )
    assert encode_exchange(e) == abi_encode(EXCHANGE_TYPES, [4, *_fields(e)])


def test_encode_negative_words_are_sign_extended() -> None:
    data = encode_position(Position(1, 2, -1, -2, 0, 0))
    assert data[3 * 32 : 4 * 32] == b"\xff" * 32  # size = -1
    assert data[4 * 32 : 5 * 32] == b"\xff" * 31 + b"\xfe"  # quote = -2


def test_encode_devnet_markets_match_eth_abi_and_decode_without_symbol() -> None:
    for m in DEVNET_MARKETS:
        data = encode_market(m)
        assert data == abi_encode(MARKET_TYPES, [3, *_fields(m)])
        assert len(data) == 15 * 32
        decoded = decode_leaf(data)
        assert decoded == m
        assert isinstance(decoded, Market) and decoded.symbol == ""


def test_leaf_hash_is_salted_keccak_of_encoding() -> None:
    e = Exchange.genesis()
    assert leaf_hash(e) == keccak256(b"\x00" + encode_exchange(e))


def test_encode_leaf_non_leaf_raises_type_error() -> None:
    with pytest.raises(TypeError):
        encode_leaf("account")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        index_of(5)  # type: ignore[arg-type]


# -- decoding rejects non-canonical encodings -----------------------------------------------------

OWNER = checksum_address(b"\x5a" * 20)
SAMPLES: dict[int, tuple[Leaf, list[str]]] = {
    1: (Account(3, OWNER, 10, 2), ACCOUNT_TYPES),
    2: (Position(3, 1, -5, 7, -9, 11), POSITION_TYPES),
    3: (BTC_USD, MARKET_TYPES),
    4: (Exchange(-1, 2, 3, 4, 5, b"\x06" * 32, 7, 8), EXCHANGE_TYPES),
    5: (Order(3, 1, 65, 2, True, 10, 9, 4, 1, 3, 99), ORDER_TYPES),
}


def _with_word(data: bytes, position: int, word: bytes) -> bytes:
    assert len(word) == 32
    return data[: 32 * position] + word + data[32 * position + 32 :]


def _bad_words(solidity_type: str) -> list[bytes]:
    """Words that are not a canonical encoding of ``solidity_type``."""
    if solidity_type == "bytes32":
        return []  # every word is one
    if solidity_type == "address":
        return [b"\x00" * 11 + b"\x01" + b"\x22" * 20, b"\xff" * 32]
    if solidity_type == "bool":
        return [(2).to_bytes(32, "big"), b"\xff" * 32]
    bits = int(solidity_type.removeprefix("u").removeprefix("int"))
    if solidity_type.startswith("u"):
        return [(1 << bits).to_bytes(32, "big"), b"\xff" * 32]
    return [
        (1 << (bits - 1)).to_bytes(32, "big"),  # positive, one past the max
        ((1 << bits) - 1).to_bytes(32, "big"),  # -1 without sign extension
        (-(1 << (bits - 1)) - 1).to_bytes(32, "big", signed=True),  # one below the min
    ]


def _non_canonical_cases() -> list[tuple[int, int, bytes]]:
    cases = []
    for leaf_type, (_, types) in SAMPLES.items():
        for position, solidity_type in enumerate(types[1:], start=1):
            for word in _bad_words(solidity_type):
                cases.append((leaf_type, position, word))
    return cases


@pytest.mark.parametrize(("leaf_type", "position", "word"), _non_canonical_cases())
def test_decode_leaf_non_canonical_word_raises(leaf_type: int, position: int, word: bytes) -> None:
    leaf, _ = SAMPLES[leaf_type]
    data = _with_word(encode_leaf(leaf), position, word)
    with pytest.raises(ProtocolError) as info:
        decode_leaf(data)
    assert info.value.code == "bad_leaf"


@pytest.mark.parametrize("leaf_type", sorted(SAMPLES))
def test_decode_leaf_wrong_word_count_raises(leaf_type: int) -> None:
    data = encode_leaf(SAMPLES[leaf_type][0])
    for bad in (data + b"\x00" * 32, data[:-32], data + b"\x00", data[:-1]):
        with pytest.raises(ProtocolError):
            decode_leaf(bad)


@pytest.mark.parametrize(
    "type_word",
    [
        (0).to_bytes(32, "big"),
        (5).to_bytes(32, "big"),  # an account leaf relabelled as an order (wrong word count)
        (6).to_bytes(32, "big"),
        (1 << 8 | 1).to_bytes(32, "big"),  # type 1 with a dirty high byte
        b"\xff" * 32,
    ],
)
def test_decode_leaf_bad_type_word_raises(type_word: bytes) -> None:
    data = _with_word(encode_leaf(SAMPLES[1][0]), 0, type_word)
    with pytest.raises(ProtocolError):
        decode_leaf(data)


def test_decode_leaf_leaf_as_other_type_raises() -> None:
    # an exchange leaf (9 words) relabelled as an account (5), a position (7) or a market (15)
    data = encode_exchange(Exchange.genesis())
    for leaf_type in (1, 2, 3):
        with pytest.raises(ProtocolError):
            decode_leaf(_with_word(data, 0, leaf_type.to_bytes(32, "big")))


def test_decode_leaf_semantic_ranges_raise() -> None:
    account = encode_account(Account(0, OWNER, 0, 0))
    with pytest.raises(ProtocolError, match="account_id"):
        decode_leaf(_with_word(account, 1, (1 << 24).to_bytes(32, "big")))  # fits uint32 only
    position = encode_position(Position(0, 0, 0, 1, 0, 0))
    with pytest.raises(ProtocolError, match="market_id"):
        decode_leaf(_with_word(position, 2, (64).to_bytes(32, "big")))  # fits uint16 only
    exchange = encode_exchange(Exchange.genesis())
    with pytest.raises(ProtocolError, match="withdrawal_count"):
        decode_leaf(_with_word(exchange, 7, ((1 << 32) + 1).to_bytes(32, "big")))  # > 2^32 leaves
    market = encode_market(BTC_USD)
    with pytest.raises(ProtocolError, match="price_tick"):
        decode_leaf(_with_word(market, 13, (0).to_bytes(32, "big")))
    order = encode_order(Order(0, 1, 65, 0, False, 1, 5, 2, 0, 0, 0))
    with pytest.raises(ProtocolError, match="slot"):
        decode_leaf(_with_word(order, 2, (2).to_bytes(32, "big")))  # slot != nonce % 64
    with pytest.raises(ProtocolError, match="filled"):
        decode_leaf(_with_word(order, 8, (6).to_bytes(32, "big")))  # filled > size
    with pytest.raises(ProtocolError, match="time_in_force"):
        decode_leaf(_with_word(order, 9, (3).to_bytes(32, "big")))
    with pytest.raises(ProtocolError, match="flags"):
        decode_leaf(_with_word(order, 10, (4).to_bytes(32, "big")))


def test_decode_leaf_empty_and_non_bytes_raise() -> None:
    with pytest.raises(ProtocolError):
        decode_leaf(b"")
    with pytest.raises(ProtocolError):
        decode_leaf("00" * 160)  # type: ignore[arg-type]


def test_decode_leaf_accepts_bytearray() -> None:
    leaf = SAMPLES[2][0]
    assert decode_leaf(bytearray(encode_leaf(leaf))) == leaf
