"""Value objects: range validation, checksummed owners, position equity and margin."""

from __future__ import annotations

import dataclasses
import random

import pytest
from eth_utils import to_checksum_address
from hypothesis import given
from hypothesis import strategies as st

from isoperp.ledger.markets import BTC_USD, DEVNET_MARKETS
from isoperp.ledger.model import (
    Account,
    Exchange,
    Market,
    Order,
    Position,
    checksum_address,
    eip55_from_lower_hex,
)
from isoperp.tree.merkle import SparseMerkleTree

OWNER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def test_account_valid_fields_construct() -> None:
    a = Account(5, OWNER, 10, 2)
    assert (a.account_id, a.owner, a.collateral, a.nonce) == (5, OWNER, 10, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.collateral = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("account_id", 1 << 24),  # index layout: ids < 2^24
        ("account_id", -1),
        ("collateral", -1),
        ("collateral", 1 << 128),
        ("nonce", 1 << 64),
    ],
)
def test_account_out_of_range_raises_value_error(field: str, value: int) -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(Account(0, OWNER, 0, 0), **{field: value})


def test_account_bool_field_raises_type_error() -> None:
    with pytest.raises(TypeError):
        Account(True, OWNER, 0, 0)  # type: ignore[arg-type]


@pytest.mark.parametrize("owner", [OWNER.lower(), OWNER.upper().replace("0X", "0x"), "0x1234", 5])
def test_account_non_checksummed_owner_raises(owner: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        Account(0, owner, 0, 0)  # type: ignore[arg-type]


@given(st.binary(min_size=20, max_size=20))
def test_checksum_address_random_matches_eth_utils(raw: bytes) -> None:
    expected = to_checksum_address(raw)
    assert checksum_address(raw) == expected
    assert checksum_address("0x" + raw.hex()) == expected
    assert checksum_address("0x" + raw.hex().upper()) == expected
    assert checksum_address(expected) == expected


def test_checksum_address_bad_mixed_case_raises() -> None:
    wrong = OWNER.replace("F", "f", 1)  # flip the case of one letter
    assert wrong != OWNER
    for _ in range(2):  # a cached success of OWNER never lets the wrong case through
        assert checksum_address(OWNER) == OWNER
        with pytest.raises(ValueError, match="checksum"):
            checksum_address(wrong)


def test_eip55_matches_eth_utils_on_random_addresses() -> None:
    rng = random.Random(55)
    for raw in [bytes(20), b"\xff" * 20] + [rng.randbytes(20) for _ in range(2_000)]:
        expected = to_checksum_address(raw)
        assert eip55_from_lower_hex(raw.hex().encode()) == expected
        assert checksum_address(raw) == checksum_address(expected.lower()) == expected


@pytest.mark.parametrize(
    "address",
    [bytearray(20), None, 5, b"\x00" * 19, "0X" + "00" * 20, "0x" + "00" * 21, "0x" + "g" * 40],
)
def test_checksum_address_rejects_non_addresses_with_value_error(address: object) -> None:
    for _ in range(2):
        with pytest.raises(ValueError):
            checksum_address(address)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("size", 1 << 63),
        ("size", -(1 << 63) - 1),
        ("quote", 1 << 127),
        ("basis", -(1 << 127) - 1),
        ("funding_index", 1 << 127),
        ("market_id", 64),
        ("account_id", 1 << 24),
    ],
)
def test_position_out_of_range_raises_value_error(field: str, value: int) -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(Position(0, 0, 0, 0, 0, 0), **{field: value})


def test_position_extremes_construct() -> None:
    p = Position((1 << 24) - 1, 63, -(1 << 63), -(1 << 127), (1 << 127) - 1, -(1 << 127))
    assert p.size == -(1 << 63)


def test_position_is_empty_only_when_flat_without_quote() -> None:
    assert Position(0, 0, 0, 0, 0, 0).is_empty
    assert not Position(0, 0, 0, 1, 0, 0).is_empty
    assert not Position(0, 0, 0, -1, 0, 0).is_empty
    assert not Position(0, 0, 1, 0, 0, 0).is_empty


def test_position_long_equity_and_margin_exact() -> None:
    # long 0.1 BTC (10,000 lots) bought at $60,000 with $1,000 margin, fee 3,000,000:
    # quote = 1,000,000,000 - 6,000,000,000 - 3,000,000 = -5,003,000,000
    p = Position(1, 0, 10_000, -5_003_000_000, 6_000_000_000, 0)
    # at mark $59,000 (590,000 ticks): notional 5,900,000,000 -> equity 897,000,000
    assert p.notional(590_000, BTC_USD) == 5_900_000_000
    assert p.equity(590_000, BTC_USD) == 897_000_000
    # IMR 5% of 5.9e9 = 295,000,000; MMR 3% = 177,000,000
    assert p.initial_margin(590_000, BTC_USD) == 295_000_000
    assert p.maintenance_margin(590_000, BTC_USD) == 177_000_000


def test_position_short_equity_rounds_against_trader() -> None:
    m = dataclasses.replace(BTC_USD, notional_exp=-1)
    p = Position(1, 0, -3, 100, 0, 0)
    # notional(-3, 7) with e = -1: floor(-2.1) = -3 -> equity 97 (not 98)
    assert p.equity(7, m) == 97
    assert p.initial_margin(7, m) == 1  # ceil(3 * 5%)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("market_id", 64),
        ("mark_price", 1 << 64),
        ("funding_index", 1 << 127),
        ("imf_ppm", 1_000_001),  # > 100%
        ("mmf_ppm", 50_001),  # above imf
        ("notional_exp", 128),
        ("maker_fee_ppm", -1_000_001),
        ("taker_fee_ppm", 1 << 31),
        ("size_step", 0),
        ("price_tick", 0),
        ("open_interest", -1),
    ],
)
def test_market_invalid_field_raises_value_error(field: str, value: int) -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(BTC_USD, **{field: value})


def test_market_symbol_not_part_of_equality() -> None:
    assert dataclasses.replace(BTC_USD, symbol="") == BTC_USD
    assert dataclasses.replace(BTC_USD, open_interest=1) != BTC_USD


def test_market_notional_uses_its_exponent() -> None:
    assert BTC_USD.notional(2, 600_000) == 1_200_000
    assert dataclasses.replace(BTC_USD, notional_exp=-2).notional(2, 150) == 3


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("insurance_fund", 1 << 127),
        ("fee_balance", -1),
        ("next_account_id", (1 << 24) + 1),
        ("deposit_cursor", 1 << 64),
        ("forced_cursor", -1),
        ("withdrawals_root", b"\0" * 31),
        ("withdrawal_count", (1 << 32) + 1),
        ("withdrawal_count", -1),
        ("withdrawal_total", 1 << 128),
    ],
)
def test_exchange_out_of_range_raises_value_error(field: str, value: int) -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(Exchange.genesis(), **{field: value})


def test_exchange_withdrawals_root_not_bytes_raises_type_error() -> None:
    with pytest.raises(TypeError):
        dataclasses.replace(Exchange.genesis(), withdrawals_root="0x" + "00" * 32)


def test_exchange_genesis_holds_the_empty_withdrawals_root() -> None:
    e = Exchange.genesis()
    assert e.withdrawals_root == SparseMerkleTree(32).root
    assert (e.withdrawal_count, e.withdrawal_total) == (0, 0)


def test_exchange_negative_insurance_fund_constructs() -> None:
    assert Exchange(-5, 0, 1 << 24, 0, 0, b"\0" * 32, 0, 0).insurance_fund == -5


def test_market_types_are_checked() -> None:
    with pytest.raises(TypeError):
        Market(**{**_market_kwargs(), "min_size": True})
    with pytest.raises(TypeError):
        Market(**{**_market_kwargs(), "symbol": 5})


def _market_kwargs() -> dict[str, object]:
    return {f.name: getattr(BTC_USD, f.name) for f in dataclasses.fields(BTC_USD)}


# The validators' one-expression fast paths must accept exactly what the field-by-field checks
# (``_validate``, which also produces the error messages) accept.
_EDGES = st.sampled_from(
    [0, 1, 2, 5, 63, 64, 255, 256, (1 << 16) - 1, 1 << 16, (1 << 24) - 1, 1 << 24, 1_000_000,
     1_000_001, (1 << 31) - 1, 1 << 31, (1 << 32) - 1, 1 << 32, (1 << 63) - 1, 1 << 63,
     (1 << 64) - 1, 1 << 64, (1 << 127) - 1, 1 << 127, (1 << 128) - 1, 1 << 128, -1, -2, -128,
     -129, -1_000_000, -1_000_001, -(1 << 31), -(1 << 31) - 1, -(1 << 63), -(1 << 63) - 1,
     -(1 << 127), -(1 << 127) - 1, True, False, 1.0, None]
)
_OWNERS = st.sampled_from([OWNER, OWNER.lower(), "0x" + "00" * 20, "0x12", 7, None])


def _agrees(cls: type, values: list[object]) -> None:
    try:
        obj = cls(*values)
    except (TypeError, ValueError):
        return  # the fast path fell back to _validate, which raised
    obj._validate()  # accepted by the fast path: the full checks agree


_BASES: dict[type, list[object]] = {
    Position: [3, 1, -5, -7, 9, -11],
    Exchange: [-1, 2, 3, 4, 5, b"\x06" * 32, 7, 8],
    Account: [0, OWNER, 5, 1],
    Market: [getattr(BTC_USD, f.name) for f in dataclasses.fields(Market)],
    Order: [1, 3, 67, 0, True, 10, 5, 5, 2, 3, 0],
}


_EDGE_VALUES = [
    0, 1, 2, 3, 4, 5, 7, 8, 63, 64, 65, 127, 128, 255, 256, (1 << 16) - 1, 1 << 16,
    (1 << 24) - 1, 1 << 24, (1 << 24) + 1, 1_000_000,
    1_000_001, (1 << 31) - 1, 1 << 31, (1 << 32) - 1, 1 << 32, (1 << 63) - 1, 1 << 63,
    (1 << 64) - 1, 1 << 64, (1 << 127) - 1, 1 << 127, (1 << 128) - 1, 1 << 128, -1, -2, -128,
    -129, -1_000_000, -1_000_001, -(1 << 31), -(1 << 31) - 1, -(1 << 63), -(1 << 63) - 1,
    -(1 << 127), -(1 << 127) - 1, True, False, 1.0, None, OWNER, OWNER.lower(), "BTC",
]


@pytest.mark.parametrize("cls", [Position, Exchange, Account, Market, Order])
def test_fast_paths_agree_with_field_checks_one_field_at_a_time(cls: type) -> None:
    """Every field of a valid leaf set to every edge value (for orders also with the slot kept
    consistent with the nonce): accepted only if the full checks accept it."""
    for index in range(len(_BASES[cls])):
        for value in _EDGE_VALUES:
            values = list(_BASES[cls])
            values[index] = value
            _agrees(cls, values)
            if cls is Order and index == 2 and type(value) is int:
                values[1] = value % 64
                _agrees(cls, values)


@given(
    st.sampled_from(sorted(_BASES, key=lambda c: c.__name__)),
    st.lists(st.tuples(st.integers(0, 14), _EDGES | _OWNERS), min_size=1, max_size=3),
    st.booleans(),
)
def test_fast_paths_agree_with_field_checks(
    cls: type, changes: list[tuple[int, object]], keep_slot: bool
) -> None:
    """A valid leaf with one to three fields set to edge values (of any type)."""
    values = list(_BASES[cls])
    for index, value in changes:
        values[index % len(values)] = value
    if cls is Order and keep_slot and type(values[2]) is int:
        values[1] = values[2] % 64  # slot = nonce % 64, so the other checks get exercised
    _agrees(cls, values)


def _unreachable(self: object) -> None:
    raise AssertionError(f"{type(self).__name__}: the fast path fell back to _validate")


def test_fast_paths_accept_the_devnet_leaves(monkeypatch: pytest.MonkeyPatch) -> None:
    """Valid leaves (the devnet markets, a market with every signed field negative, accounts,
    positions, the exchange, live and closed orders and a tombstone) are accepted by the
    one-expression fast path alone: ``_validate`` is never reached (it is the slow path, and it
    accepts them too)."""
    leaves = [
        *DEVNET_MARKETS,
        dataclasses.replace(
            BTC_USD, market_id=63, funding_index=-(1 << 127), notional_exp=-128,
            maker_fee_ppm=-1_000_000, taker_fee_ppm=1_000_000, imf_ppm=1_000_000,
            mmf_ppm=1_000_000, min_size=0, open_interest=(1 << 64) - 1,
        ),
        Account(0, OWNER, 5, 1),
        Account((1 << 24) - 1, "0x" + "00" * 20, (1 << 128) - 1, (1 << 64) - 1),
        Position(3, 1, -5, -7, 9, -11),
        Position((1 << 24) - 1, 63, -(1 << 63), -(1 << 127), (1 << 127) - 1, 0),
        Exchange(-1, 2, 3, 4, 5, b"\x06" * 32, 7, 8),
        Exchange(
            -(1 << 127),
            (1 << 128) - 1,
            1 << 24,
            (1 << 64) - 1,
            (1 << 64) - 1,
            b"\xff" * 32,
            1 << 32,
            (1 << 128) - 1,
        ),
        Order(1, 3, 67, 0, True, 10, 5, 5, 2, 3, 0),
        Order(1, 3, 67, 0, False, 10, 5, 0, 0, 0, 99),
        Order.tombstone(7, (1 << 64) - 1),
    ]
    for leaf in leaves:
        leaf._validate()  # the slow path accepts them (so they are valid leaves)
    for cls in (Market, Account, Position, Exchange, Order):
        monkeypatch.setattr(cls, "_validate", _unreachable)
    for leaf in leaves:
        values = [getattr(leaf, f.name) for f in dataclasses.fields(leaf)]
        assert type(leaf)(*values) == leaf  # __post_init__ returned from the fast path
