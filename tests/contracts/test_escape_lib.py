"""EscapeLib against the Python reference arithmetic (isoperp.ledger.arith): floorDiv, notional with
signed exponents, the escape value of a position, and the haircut. Random inputs include negative
operands, exponents below zero and results at the edges of int256."""

from __future__ import annotations

import random
from typing import Any

import pytest

from isoperp.ledger import arith
from isoperp.ledger.model import Market, Position
from isoperp.protocol.constants import PPM
from isoperp.protocol.leaves import solidity_struct

INT256_MIN, INT256_MAX = -(2**255), 2**255 - 1
U = lambda rng, bits: rng.randrange(0, 1 << bits)  # noqa: E731
S = lambda rng, bits: rng.randrange(-(1 << (bits - 1)), 1 << (bits - 1))  # noqa: E731


def _market(market_id: int, mark: int, funding: int, exp: int) -> Market:
    return Market(
        market_id=market_id,
        mark_price=mark,
        mark_time=0,
        funding_index=funding,
        funding_time=0,
        imf_ppm=50_000,
        mmf_ppm=30_000,
        notional_exp=exp,
        maker_fee_ppm=100,
        taker_fee_ppm=500,
        min_size=1,
        size_step=1,
        price_tick=1,
        open_interest=0,
    )


def market_fields(m: Market) -> tuple[int | str, ...]:
    return solidity_struct(m)


def position_fields(p: Position) -> tuple[int | str, ...]:
    return solidity_struct(p)


def reference_equity(p: Position, m: Market) -> int:
    """quote + floor(-(market.fundingIndex - position.fundingIndex) * size / 1e6) + notional."""
    funding = arith.floor_div(-(m.funding_index - p.funding_index) * p.size, PPM)
    return p.quote + funding + arith.notional(p.size, m.mark_price, m.notional_exp)


@pytest.fixture(scope="module")
def harness(project: Any, accounts: Any) -> Any:
    return accounts[0].deploy(project.EscapeHarness)


# ---------------------------------------------------------------- floorDiv


def test_floorDiv_random_signs_match_python_succeeds(harness: Any) -> None:
    rng = random.Random(11)
    cases = [
        (7, 2),
        (-7, 2),
        (7, -2),
        (-7, -2),
        (-6, 3),
        (0, -5),
        (INT256_MIN, 1),
        (INT256_MAX, -1),
    ]
    cases += [(INT256_MIN, 2), (INT256_MIN, -2), (INT256_MIN + 1, -1), (-1, INT256_MAX)]
    for _ in range(150):
        bits = rng.choice([8, 64, 128, 200, 256])
        a = S(rng, bits)
        b = S(rng, rng.choice([2, 8, 24, 64, 256])) or 1
        cases.append((a, b))
    for a, b in cases:
        assert harness.floorDiv(a, b) == arith.floor_div(a, b), (a, b)


def test_floorDiv_zero_divisor_reverts(harness: Any, accounts: Any, reverts: Any) -> None:
    with reverts(harness.EscapeLib_DivisionByZero):
        harness.floorDiv.transact(5, 0, sender=accounts[0])


def test_floorDiv_min_by_minus_one_reverts(harness: Any, accounts: Any, reverts: Any) -> None:
    # 2^255 does not fit an int256 (Python's result is exact and out of range).
    assert arith.floor_div(INT256_MIN, -1) > INT256_MAX
    with reverts(harness.EscapeLib_Overflow):
        harness.floorDiv.transact(INT256_MIN, -1, sender=accounts[0])


# ---------------------------------------------------------------- notional


def test_notional_random_exponents_match_python_succeeds(harness: Any) -> None:
    rng = random.Random(12)
    cases = [
        (-1, 1, -1),  # floor(-0.1) = -1
        (1, 1, -1),
        (-3, 7, -2),  # floor(-0.21) = -1
        (-(2**63), 2**64 - 1, -128),
        (2**63 - 1, 2**64 - 1, -128),
        (-(2**63), 2**64 - 1, -39),
        (-(2**63), 2**64 - 1, -38),
        (-(2**63), 2**64 - 1, 38),  # just fits: 2^127 * 1e38 < 2^255
        (0, 2**64 - 1, 127),
        (5, 0, 127),
    ]
    for _ in range(150):
        size = S(rng, rng.choice([8, 32, 64]))
        price = U(rng, rng.choice([8, 32, 64]))
        exp = rng.randrange(-128, 39)
        cases.append((size, price, exp))
    for size, price, exp in cases:
        expected = arith.notional(size, price, exp)
        assert INT256_MIN <= expected <= INT256_MAX
        assert harness.notional(size, price, exp) == expected, (size, price, exp)


@pytest.mark.parametrize(
    ("size", "price", "exp"),
    [(1, 1, 77), (1, 1, 127), (-(2**63), 2**64 - 1, 39), (2**63 - 1, 2**64 - 1, 40)],
)
def test_notional_beyond_int256_reverts(
    harness: Any, accounts: Any, reverts: Any, size: int, price: int, exp: int
) -> None:
    assert not INT256_MIN <= arith.notional(size, price, exp) <= INT256_MAX
    with reverts(harness.EscapeLib_Overflow):
        harness.notional.transact(size, price, exp, sender=accounts[0])


def test_notional_largest_power_fits_succeeds(harness: Any) -> None:
    assert harness.notional(5, 1, 76) == arith.notional(5, 1, 76) == 5 * 10**76


# ---------------------------------------------------------------- equity / positionValue


def test_positionValue_random_positions_match_python_succeeds(harness: Any) -> None:
    rng = random.Random(13)
    for i in range(120):
        wide = i % 4 == 0  # every fourth case uses full-width fields
        size = S(rng, 64 if wide else 40)
        quote = S(rng, 128 if wide else 60)
        m_funding = S(rng, 128 if wide else 50)
        p_funding = S(rng, 128 if wide else 50)
        exp = rng.randrange(-30, 20)
        market = _market(rng.randrange(64), U(rng, 64 if wide else 32), m_funding, exp)
        position = Position(
            rng.randrange(1 << 24), market.market_id, size, quote, S(rng, 128), p_funding
        )
        expected = reference_equity(position, market)
        if not INT256_MIN <= expected <= INT256_MAX:
            continue
        p, m = position_fields(position), market_fields(market)
        assert harness.equity(p, m) == expected
        assert harness.positionValue(p, m) == max(0, expected)


def test_positionValue_bad_debt_is_zero_succeeds(harness: Any) -> None:
    # Long 10 lots bought at 100 with 50 margin, marked at 90: equity = 50 - 1000 + 900 = -50.
    market = _market(0, 90, 0, 0)
    position = Position(1, 0, 10, 50 - 1000, 1000, 0)
    assert reference_equity(position, market) == -50
    assert harness.equity(position_fields(position), market_fields(market)) == -50
    assert harness.positionValue(position_fields(position), market_fields(market)) == 0


def test_positionValue_funding_floors_against_the_trader_succeeds(harness: Any) -> None:
    # Index rose by 1.5 (1_500_000 scaled): a long of 3 lots owes 4.5 -> floor(-4.5) = -5.
    market = _market(2, 10, 1_500_000, 0)
    long = Position(1, 2, 3, 100, 0, 0)
    short = Position(1, 2, -3, 100, 0, 0)
    assert harness.equity(position_fields(long), market_fields(market)) == 100 - 5 + 30
    assert harness.equity(position_fields(short), market_fields(market)) == 100 + 4 - 30
    assert reference_equity(long, market) == 125 and reference_equity(short, market) == 74


# size * price * 1e39 lies within 2^170 of the int256 bound: the exact notional fits, and a large
# funding credit (up to ~3e51) takes the exact equity past the bound. Found by searching sizes below
# 2^63 for a small remainder of floor(INT256_MAX / 1e39) (kept here, the search takes a second).
EDGE_SIZE = 9_223_372_036_850_212_164
EDGE_PRICE = (INT256_MAX // 10**39) // EDGE_SIZE


@pytest.mark.parametrize("sign", [1, -1])
def test_equity_beyond_int256_reverts(harness: Any, accounts: Any, reverts: Any, sign: int) -> None:
    market = _market(0, EDGE_PRICE, -(2**127), 39)
    size = sign * EDGE_SIZE
    assert EDGE_PRICE < 2**64
    assert INT256_MAX - arith.notional(EDGE_SIZE, EDGE_PRICE, 39) < 2**170
    position = Position(1, 0, size, sign * (2**127 - 1), 0, 2**127 - 1)
    assert INT256_MIN <= arith.notional(size, EDGE_PRICE, 39) <= INT256_MAX
    assert not INT256_MIN <= reference_equity(position, market) <= INT256_MAX
    with reverts(harness.EscapeLib_Overflow):
        harness.equity.transact(
            position_fields(position), market_fields(market), sender=accounts[0]
        )
    # Without the funding credit the same position is exact, right next to the bound.
    fits = Position(1, 0, size, sign * (2**127 - 1), 0, -(2**127))
    expected = reference_equity(fits, market)
    assert INT256_MIN <= expected <= INT256_MAX
    assert harness.equity(position_fields(fits), market_fields(market)) == expected


# ---------------------------------------------------------------- haircut


def test_haircut_matches_formula_succeeds(harness: Any) -> None:
    rng = random.Random(14)
    cases = [(10, 100, 100), (10, 100, 50), (0, 5, 10), (7, 0, 10), (10, 5, 0), (20, 5, 10)]
    for _ in range(60):
        total = U(rng, 128)
        pool = U(rng, 128)
        value = rng.randrange(0, total + 1) if rng.random() < 0.9 else U(rng, 200)
        cases.append((value, pool, total))
    for value, pool, total in cases:
        expected = value if total <= pool else min(value, total) * pool // total
        assert harness.haircut(value, pool, total) == expected, (value, pool, total)
