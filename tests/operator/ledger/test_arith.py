"""Integer arithmetic: rounding directions, worked numbers from dYdX v4, type checks."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from isoperp.ledger import arith

ints = st.integers(min_value=-(1 << 140), max_value=1 << 140)
nonzero = ints.filter(lambda b: b != 0)


# -- division -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "floor", "ceil", "trunc"),
    [
        (7, 2, 3, 4, 3),
        (-7, 2, -4, -3, -3),
        (7, -2, -4, -3, -3),
        (-7, -2, 3, 4, 3),
        (6, 3, 2, 2, 2),
        (-6, 3, -2, -2, -2),
        (0, 5, 0, 0, 0),
        (1, 1_000_000, 0, 1, 0),
        (-1, 1_000_000, -1, 0, 0),
    ],
)
def test_division_signs_round_as_named(a: int, b: int, floor: int, ceil: int, trunc: int) -> None:
    assert arith.floor_div(a, b) == floor
    assert arith.ceil_div(a, b) == ceil
    assert arith.trunc_div(a, b) == trunc


@given(ints, nonzero)
def test_division_random_matches_exact_fractions(a: int, b: int) -> None:
    exact = Fraction(a, b)
    assert arith.floor_div(a, b) == math.floor(exact)
    assert arith.ceil_div(a, b) == math.ceil(exact)
    assert arith.trunc_div(a, b) == math.trunc(exact)


def test_division_by_zero_raises() -> None:
    for fn in (arith.floor_div, arith.ceil_div, arith.trunc_div):
        with pytest.raises(ZeroDivisionError):
            fn(1, 0)


@pytest.mark.parametrize("bad", [True, False, 1.0, "1", None])
def test_arith_non_int_argument_raises_type_error(bad: object) -> None:
    with pytest.raises(TypeError):
        arith.floor_div(bad, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        arith.ceil_div(3, bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        arith.trunc_div(bad, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        arith.notional(bad, 3, 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        arith.notional(3, 3, bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        arith.fee(bad, 100)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        arith.margin_requirement(100, bad)  # type: ignore[arg-type]


# -- dYdX v4 funding_test.go: index delta = trunc(rate_ppm * dt * price * 10^NEXP / 28800) --------


def _funding_index_delta(rate_ppm: int, dt: int, price: int, nexp: int) -> int:
    numerator = rate_ppm * dt * price
    if nexp >= 0:
        return arith.trunc_div(numerator * 10**nexp, 28_800)
    return arith.trunc_div(numerator, 28_800 * 10**-nexp)


@pytest.mark.parametrize(
    ("rate_ppm", "dt", "price", "nexp", "expected"),
    [
        (1_001_999, 28_800, 1000, -12 + 0 + 6, 1001),
        (-1_001_999, 28_800, 1000, -12 + 0 + 6, -1001),  # truncates toward 0, not -1002
        (-1_001_999, 14_400, 1000, -4 + 2 + 6, -5_009_995_000_000),
    ],
)
def test_trunc_div_dydx_funding_numbers_match(
    rate_ppm: int, dt: int, price: int, nexp: int, expected: int
) -> None:
    assert _funding_index_delta(rate_ppm, dt, price, nexp) == expected


# -- notional -------------------------------------------------------------------------------------


def test_notional_exp_zero_is_size_times_price() -> None:
    # 1 BTC = 100,000 lots at $60,000 = 600,000 ticks -> 6e10 micro-USDC = $60,000
    assert arith.notional(100_000, 600_000, 0) == 60_000_000_000
    assert arith.notional(-100_000, 600_000, 0) == -60_000_000_000


def test_notional_positive_exp_scales_up() -> None:
    assert arith.notional(3, 7, 2) == 2100
    assert arith.notional(-3, 7, 2) == -2100


def test_notional_negative_exp_floors_toward_minus_infinity() -> None:
    assert arith.notional(3, 7, -1) == 2  # 2.1 -> 2
    assert arith.notional(-3, 7, -1) == -3  # -2.1 -> -3 (lowers equity: against the trader)
    assert arith.notional(-10, 7, -1) == -7  # exact stays exact
    assert arith.notional(1, 1, -6) == 0
    assert arith.notional(-1, 1, -6) == -1


@given(
    st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1),
    st.integers(min_value=0, max_value=(1 << 64) - 1),
    st.integers(min_value=-128, max_value=127),
)
def test_notional_random_matches_exact_floor(size: int, price: int, exp: int) -> None:
    assert arith.notional(size, price, exp) == math.floor(
        Fraction(size * price) * Fraction(10) ** exp
    )


# -- fees -----------------------------------------------------------------------------------------


def test_fee_positive_ppm_rounds_up() -> None:
    assert arith.fee(6_000_000_000, 500) == 3_000_000  # exact
    assert arith.fee(1, 500) == 1  # 0.0005 -> 1
    assert arith.fee(1_999, 500) == 1  # 0.9995 -> 1
    assert arith.fee(2_001, 500) == 2  # 1.0005 -> 2
    assert arith.fee(0, 500) == 0


def test_fee_negative_ppm_rebate_rounds_down() -> None:
    assert arith.fee(6_000_000_000, -100) == -600_000  # exact rebate
    assert arith.fee(1, -100) == 0  # rebate 0.0001 -> 0
    assert arith.fee(19_999, -100) == -1  # rebate 1.9999 -> 1
    assert arith.fee(20_000, -100) == -2


def test_fee_negative_notional_raises() -> None:
    with pytest.raises(ValueError):
        arith.fee(-1, 100)


@given(st.integers(min_value=0, max_value=1 << 128), st.integers(-1_000_000, 1_000_000))
def test_fee_random_rounds_against_the_trader(n: int, ppm: int) -> None:
    exact = Fraction(n * ppm, 1_000_000)
    expected = math.ceil(exact) if ppm >= 0 else -math.floor(-exact)
    assert arith.fee(n, ppm) == expected


# -- margin requirements (dYdX liquidity_tier_test.go) --------------------------------------------


def test_margin_requirement_dydx_worked_numbers_match() -> None:
    # ceil(123,456 * 56.7243%) = ceil(70,029.551808) = 70,030
    assert arith.margin_requirement(123_456, 567_243) == 70_030
    # 10% of 1 -> 1 (rounds up)
    assert arith.margin_requirement(1, 100_000) == 1
    assert arith.initial_margin_requirement(1, 100_000) == 1
    assert arith.maintenance_margin_requirement(123_456, 567_243) == 70_030


def test_margin_requirement_negative_notional_uses_absolute_value() -> None:
    assert arith.margin_requirement(-123_456, 567_243) == 70_030
    assert arith.margin_requirement(-60_000_000_000, 50_000) == 3_000_000_000


def test_margin_requirement_zero_notional_is_zero() -> None:
    assert arith.margin_requirement(0, 50_000) == 0


def test_margin_requirement_negative_fraction_raises() -> None:
    with pytest.raises(ValueError):
        arith.margin_requirement(100, -1)


def test_sign_values_are_unit() -> None:
    assert (arith.sign(-5), arith.sign(0), arith.sign(9)) == (-1, 0, 1)
