"""Risk views: equity with pending funding, requirements, margin ratio, liquidation and bankruptcy
prices (worked numbers from dYdX and Hyperliquid), what-if shocks, escape value."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from isoperp.ledger import arith, risk
from isoperp.ledger.markets import BTC_USD, ETH_USD
from isoperp.ledger.model import Position

# dYdX docs (concepts/trading/liquidations): equity $1,000, short 3 ETH at $3,000, MMF 5%.
# ETH-USD: 3 ETH = 30,000 lots of 0.0001; $3,000 = 300,000 ticks of $0.01; notional 9e9 micro-USDC.
# The short received 9e9 and holds 1e9 of margin: quote 1e10.
ETH_5 = dataclasses.replace(ETH_USD, mmf_ppm=50_000)
DYDX_SHORT = Position(0, 1, -30_000, 10_000_000_000, -9_000_000_000, 0)


def test_liquidation_price_dydx_docs_example() -> None:
    # (e - s*p) / (|s|*MMF - s) = (1000 + 9000) / (0.15 + 3) = 3,174.603: 317,460 ticks, $3,174.60
    assert risk.liquidation_price(DYDX_SHORT, ETH_5) == 317_460
    # rounded down against the short: liquidatable at every mark above it
    assert not risk.is_liquidatable(DYDX_SHORT, ETH_5, 317_460)
    assert risk.is_liquidatable(DYDX_SHORT, ETH_5, 317_461)
    assert risk.equity(DYDX_SHORT, ETH_5, 300_000) == 1_000_000_000


def test_liquidation_price_hyperliquid_isolated_example() -> None:
    # long 0.5 at 250 with isolated margin 25, max leverage 10 (MMF 1/20 = 5%) -> 210.5263.
    # A market with lots of 0.1 coin and ticks of $0.0001: notionalExp = -1 - 4 + 6 = 1.
    # 0.5 coin = 5 lots, $250 = 2,500,000 ticks: notional 5 * 2.5e6 * 10 = 125e6 micro-USDC,
    # quote = 25e6 - 125e6 = -100e6. Liquidation = 100e6 / (5 * 10 * 0.95) = 2,105,263.16 ticks,
    # rounded up against the long: 2,105,264 ($210.5264; Hyperliquid truncates to 210.5263).
    market = dataclasses.replace(BTC_USD, notional_exp=1, mmf_ppm=50_000, imf_ppm=100_000)
    long = Position(0, 0, 5, -100_000_000, 125_000_000, 0)
    assert risk.liquidation_price(long, market) == 2_105_264
    assert risk.is_liquidatable(long, market, 2_105_263)
    assert not risk.is_liquidatable(long, market, 2_105_264)


def test_margin_requirement_dydx_liquidity_tier_examples() -> None:
    assert arith.margin_requirement(123_456, 567_243) == 70_030  # ceil(123,456 * 56.7243%)
    assert arith.margin_requirement(1, 100_000) == 1  # 10% of 1 rounds up


def test_equity_and_requirements_include_pending_funding() -> None:
    market = dataclasses.replace(BTC_USD, funding_index=2_000_000)  # +2 micro-USDC per lot
    long = Position(0, 0, 1_000, -500_000_000, 600_000_000, 0)
    assert risk.pending_funding(long, market) == -2_000
    assert risk.equity(long, market) == -500_000_000 - 2_000 + 600_000_000
    assert risk.initial_requirement(long, market) == 30_000_000
    assert risk.maintenance_requirement(long, market) == 18_000_000
    assert risk.margin_ratio(long, market) == 99_998_000 * 1_000_000 // 18_000_000
    assert risk.escape_value(long, market) == 99_998_000


def test_margin_ratio_none_without_maintenance() -> None:
    assert risk.margin_ratio(Position(0, 0, 0, 5, 0, 0), BTC_USD) is None
    no_mmf = dataclasses.replace(BTC_USD, mmf_ppm=0)
    assert risk.margin_ratio(Position(0, 0, 1, 0, 0, 0), no_mmf) is None
    assert not risk.is_liquidatable(Position(0, 0, 1, -10**12, 0, 0), no_mmf)


def test_escape_value_floors_at_zero() -> None:
    bankrupt = Position(0, 0, 1_000, -700_000_000, 600_000_000, 0)
    assert risk.equity(bankrupt, BTC_USD) == -100_000_000
    assert risk.escape_value(bankrupt, BTC_USD) == 0
    assert risk.is_bankrupt(bankrupt, BTC_USD) and risk.is_liquidatable(bankrupt, BTC_USD)
    assert risk.escape_value(Position(0, 0, 0, 42, 0, 0), BTC_USD) == 42


def test_bankruptcy_price_long_rounds_down_short_rounds_up() -> None:
    long = Position(0, 0, 10_000, -5_003_000_000, 6_000_000_000, 0)
    assert risk.bankruptcy_price(long, BTC_USD) == 500_300
    ticked = dataclasses.replace(BTC_USD, price_tick=7)
    assert risk.bankruptcy_price(long, ticked, on_tick=True) == 500_297  # 71,471 ticks of 7
    odd = dataclasses.replace(long, quote=-5_003_000_001)  # 500,300.0001 -> down to 500,300
    assert risk.bankruptcy_price(odd, BTC_USD) == 500_300
    short = Position(0, 0, -30_000, 10_000_000_000, 0, 0)
    assert risk.bankruptcy_price(short, BTC_USD) == 333_334  # 333,333.33 up
    tens = dataclasses.replace(BTC_USD, price_tick=10)
    assert risk.bankruptcy_price(short, tens, on_tick=True) == 333_340
    assert risk.bankruptcy_price(Position(0, 0, 0, 1, 0, 0), BTC_USD) is None


def test_bankruptcy_price_negative_notional_exponent() -> None:
    # e = -1: closing 3 lots at p gives floor(3p / 10); quote -1,000: exact 3,333.3 -> 3,333,
    # where equity is floor(999.9) - 1,000 = -1 (the rounding the insurance fund covers)
    market = dataclasses.replace(BTC_USD, notional_exp=-1)
    long = Position(0, 0, 3, -1_000, 0, 0)
    assert risk.bankruptcy_price(long, market) == 3_333
    assert -1_000 + market.notional(3, 3_333) == -1
    assert -1_000 + market.notional(3, 3_334) == 0


def test_what_if_dydx_short_shocks() -> None:
    market = dataclasses.replace(ETH_5, mark_price=300_000)
    down = risk.what_if(DYDX_SHORT, market, -200_000)  # -20%: mark 240,000
    assert down == risk.WhatIf(240_000, 2_800_000_000, 7_777_777, False, False)
    up = risk.what_if(DYDX_SHORT, market, 100_000)  # +10%: 330,000, MMR 495,000,000
    assert up == risk.WhatIf(330_000, 100_000_000, 202_020, True, False)
    squeeze = risk.what_if(DYDX_SHORT, market, 400_000)
    assert squeeze.equity == -2_600_000_000 and squeeze.bankrupt and squeeze.liquidatable
    assert risk.what_if(DYDX_SHORT, market, -1_000_000).mark == 0


@pytest.mark.parametrize("shock", [-1_000_001, 0.5, None])
def test_what_if_bad_shock_raises_value_error(shock) -> None:
    with pytest.raises(ValueError):
        risk.what_if(DYDX_SHORT, ETH_5, shock)


exps = st.integers(-3, 3)


@given(size=st.integers(1, 10**6), quote=st.integers(-(10**13), 10**13), exp=exps)
def test_bankruptcy_price_is_within_one_unit_against_the_trader(
    size: int, quote: int, exp: int
) -> None:
    market = dataclasses.replace(BTC_USD, notional_exp=exp)
    long = Position(0, 0, size, quote, 0, 0)
    bp = risk.bankruptcy_price(long, market)
    assert quote + market.notional(size, bp) <= 0 <= quote + market.notional(size, bp + 1)
    short = Position(0, 0, -size, quote, 0, 0)
    bp = risk.bankruptcy_price(short, market)
    assert quote - market.notional(size, bp) <= 0 < quote - market.notional(size, bp - 1)


@given(
    size=st.integers(1, 10**6),
    quote=st.integers(-(10**13), 10**13),
    exp=exps,
    mmf=st.integers(1, 999_999),
    offset=st.integers(1, 10**6),
)
def test_liquidation_price_rounds_against_the_trader(
    size: int, quote: int, exp: int, mmf: int, offset: int
) -> None:
    market = dataclasses.replace(BTC_USD, notional_exp=exp, mmf_ppm=mmf, imf_ppm=mmf)
    long = Position(0, 0, size, quote, 0, 0)
    liq = risk.liquidation_price(long, market)
    mark = liq - offset
    # every mark below a long's liquidation price liquidates it (unless its notional floors to
    # 0, which leaves MMR 0: dYdX never liquidates a position without a requirement)
    if mark > 0 and risk.maintenance_requirement(long, market, mark) > 0:
        assert risk.is_liquidatable(long, market, mark)
    short = Position(0, 0, -size, quote, 0, 0)
    liq = risk.liquidation_price(short, market)
    mark = max(liq, 0) + offset  # every mark above a short's liquidation price liquidates it
    assert risk.is_liquidatable(short, market, mark)


def test_liquidation_price_flat_or_full_maintenance_is_none() -> None:
    assert risk.liquidation_price(Position(0, 0, 0, 5, 0, 0), BTC_USD) is None
    full = dataclasses.replace(BTC_USD, imf_ppm=1_000_000, mmf_ppm=1_000_000)
    assert risk.liquidation_price(Position(0, 0, 1, -5, 0, 0), full) is None
