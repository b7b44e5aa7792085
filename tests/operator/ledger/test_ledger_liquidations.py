"""The liquidation waterfall: LIQUIDATE through the book (penalty to the insurance fund), BACKSTOP
(the insurance account takes the position over while solvent), DELEVERAGE (bankrupt positions
closed against opposite positions at the bankruptcy price when the fund cannot take them).

Devnet BTC-USD (notionalExp 0: one lot at one tick is one micro-USDC; IMF 5%, MMF 3%; maker 100,
taker 500 ppm). The base scenario: L (1,000 USDC margin) buys 10,000 lots at 600,000 from M:
L quote = 1e9 - 6e9 - 3,000,000 = -5,003,000,000, so equity(m) = 10,000 m - 5,003,000,000,
MMR(m) = ceil(300 m), bankruptcy price 500,300. At m = 510,000: equity 97,000,000 < MMR
153,000,000 (liquidatable); at m = 490,000: equity -103,000,000 (bankrupt).
"""

from __future__ import annotations

import dataclasses

import pytest

from isoperp.ledger import risk
from isoperp.ledger.markets import BTC_USD
from isoperp.ledger.model import Position
from isoperp.ledger.transitions import Backstop, Deleverage, Funding, Liquidate
from isoperp.protocol.constants import INSURANCE_ACCOUNT, TIF_IOC
from isoperp.protocol.leaves import (
    EXCHANGE_INDEX,
    account_index,
    market_index,
    order_index,
    position_index,
)

L_QUOTE = -5_003_000_000
M_QUOTE = 50_000_000_000 + 6_000_000_000 - 600_000  # M's short after selling to L
FEES = 3_600_000  # the opening fill's taker + maker fees


def _scenario(h):
    """M (short 10,000), L (long 10,000, quote -5,003,000,000), B (a liquidator with margin)."""
    m = h.funded(100_000_000_000, 50_000_000_000)
    l_ = h.funded(1_000_000_000, 1_000_000_000)
    b = h.funded(100_000_000_000, 50_000_000_000)
    h.fill(m, l_, 10_000, 600_000)
    assert h.ledger.position(l_.account_id, 0) == Position(
        l_.account_id, 0, 10_000, L_QUOTE, 6_000_000_000, 0
    )
    return m, l_, b


def _others(h, *involved):
    """Account and position leaves of everyone else (a liquidation must not touch them)."""
    out = {}
    for a in h.ledger.accounts():
        if a.account_id not in involved:
            out[("a", a.account_id)] = a
    for p in h.ledger.positions():
        if p.account_id not in involved:
            out[("p", p.account_id, p.market_id)] = p
    return out


@pytest.fixture
def liq(h):
    m, l_, b = _scenario(h)
    h.set_price(510_000, 100)
    return h, m, l_, b


def _bid(h, b, price, size, **kw):
    return h.place(b, True, price, size, **kw).order.slot


# -- LIQUIDATE -------------------------------------------------------------------------------------


def test_liquidate_full_close_pays_penalty_to_fund(liq) -> None:
    h, _m, l_, b = liq
    slot = _bid(h, b, 505_000, 10_000)
    others = _others(h, l_.account_id, b.account_id)
    r = h.ledger.apply(Liquidate(0, l_.account_id, b.account_id, slot, 10_000, 505_000, 110))
    # n = 5,050,000,000; maker fee 505,000; L: quote -5,003,000,000 + 5,050,000,000 = 47,000,000
    # = equity left at the fill price; penalty min(ceil(1.5% n) = 75,750,000, 47,000,000)
    assert (r.notional, r.maker.fee, r.liquidated.fee) == (5_050_000_000, 505_000, 0)
    assert (r.penalty, r.covered, r.insurance_fund) == (47_000_000, 0, 47_000_000)
    assert r.liquidated.position is None and r.liquidated.released == 0
    assert r.liquidated.realized_pnl == 5_050_000_000 - 6_000_000_000
    assert h.ledger.position(l_.account_id, 0) is None
    assert h.ledger.account(l_.account_id).collateral == 0
    assert h.ledger.position(b.account_id, 0) == Position(
        b.account_id, 0, 10_000, 50_000_000_000 - 5_050_000_000 - 505_000, 5_050_000_000, 0
    )
    assert (r.open_interest, r.fee_balance) == (10_000, FEES + 505_000)
    assert r.touched == (
        position_index(b.account_id, 0),
        order_index(b.account_id, slot),
        position_index(l_.account_id, 0),
        market_index(0),
        EXCHANGE_INDEX,
    )
    assert _others(h, l_.account_id, b.account_id) == others
    h.ledger.check_invariants(h.net_deposits)


def test_liquidate_partial_keeps_rest_of_position(liq) -> None:
    h, _m, l_, b = liq
    slot = _bid(h, b, 505_000, 10_000)
    r = h.ledger.apply(Liquidate(0, l_.account_id, b.account_id, slot, 4_000, 505_000, 110))
    # n = 2,020,000,000; quote -2,983,000,000 with 6,000 left: equity at 505,000 = 47,000,000;
    # penalty min(30,300,000, 47,000,000) = 30,300,000; basis 6e9 - 2.4e9
    assert (r.penalty, r.maker.fee) == (30_300_000, 202_000)
    assert r.liquidated.position == Position(
        l_.account_id, 0, 6_000, -3_013_300_000, 3_600_000_000, 0
    )
    assert r.liquidated.realized_pnl == 2_020_000_000 - 2_400_000_000
    assert h.ledger.exchange.insurance_fund == 30_300_000
    # still liquidatable at 510,000: equity 46,700,000 < MMR 91,800,000
    assert risk.is_liquidatable(h.ledger.position(l_.account_id, 0), h.ledger.market(0))
    h.ledger.apply(Liquidate(0, l_.account_id, b.account_id, slot, 6_000, 505_000, 110))
    assert h.ledger.position(l_.account_id, 0) is None
    h.ledger.check_invariants(h.net_deposits)


def test_liquidate_penalty_capped_at_fee_returns_rest(liq) -> None:
    h, _m, l_, b = liq
    slot = _bid(h, b, 510_000, 10_000)
    r = h.ledger.apply(Liquidate(0, l_.account_id, b.account_id, slot, 10_000, 510_000, 110))
    # n = 5.1e9: quote 97,000,000; penalty ceil(1.5% n) = 76,500,000; 20,500,000 goes back
    assert (r.penalty, r.liquidated.released) == (76_500_000, 20_500_000)
    assert h.ledger.account(l_.account_id).collateral == 20_500_000
    assert account_index(l_.account_id) in r.touched
    h.ledger.check_invariants(h.net_deposits)


def test_liquidate_at_bankruptcy_price_leaves_nothing(liq) -> None:
    h, _m, l_, b = liq
    slot = _bid(h, b, 500_300, 10_000)
    r = h.ledger.apply(Liquidate(0, l_.account_id, b.account_id, slot, 10_000, 500_300, 110))
    assert (r.penalty, r.covered, r.liquidated.released) == (0, 0, 0)
    h.ledger.check_invariants(h.net_deposits)


def test_liquidate_beyond_bankruptcy_price_rejects(liq) -> None:
    h, _m, l_, b = liq
    slot = _bid(h, b, 500_299, 10_000)
    h.reject(
        Liquidate(0, l_.account_id, b.account_id, slot, 10_000, 500_299, 110), "beyond_bankruptcy"
    )


def test_liquidate_tick_rounding_is_covered_by_fund(harness_factory) -> None:
    # price tick 100: L moves 50 out (quote -5,003,000,050): bankruptcy 500,300.005 rounds down
    # (against L) to 500,300 on the grid; closing there leaves quote -50, which the fund covers
    h = harness_factory([dataclasses.replace(BTC_USD, price_tick=100)])
    _m, l_, b = _scenario(h)
    h.margin(l_, 0, -50)
    h.set_price(510_000, 100)
    pos = h.ledger.position(l_.account_id, 0)
    assert risk.bankruptcy_price(pos, h.ledger.market(0), on_tick=True) == 500_300
    slot = _bid(h, b, 500_300, 10_000)
    r = h.ledger.apply(Liquidate(0, l_.account_id, b.account_id, slot, 10_000, 500_300, 110))
    assert (r.penalty, r.covered, r.insurance_fund) == (0, 50, -50)
    assert r.liquidated.position is None and r.liquidated.released == 0
    h.ledger.check_invariants(h.net_deposits)


def test_liquidate_short_checks_bankruptcy_from_above(h) -> None:
    # S shorts 5,000 at 600,000 with 200 USDC: quote 2e8 + 3e9 - 1.5e6 = 3,198,500,000;
    # bankruptcy 639,700; at 635,000 equity 23,500,000 < MMR 95,250,000
    s = h.funded(200_000_000, 200_000_000)
    buyer = h.funded(100_000_000_000, 50_000_000_000)
    b = h.funded(100_000_000_000, 50_000_000_000)
    h.fill(buyer, s, 5_000, 600_000, taker_is_buy=False)
    h.set_price(635_000, 100)
    pos = h.ledger.position(s.account_id, 0)
    assert risk.bankruptcy_price(pos, h.ledger.market(0)) == 639_700
    ask = h.place(b, False, 639_701, 5_000).order.slot
    t = Liquidate(0, s.account_id, b.account_id, ask, 5_000, 639_701, 100)
    h.reject(t, "beyond_bankruptcy")
    ask = h.place(b, False, 639_700, 5_000).order.slot
    h.reject(Liquidate(0, s.account_id, b.account_id, ask, 5_001, 639_700, 100), "liquidation_size")
    r = h.ledger.apply(Liquidate(0, s.account_id, b.account_id, ask, 5_000, 639_700, 100))
    assert r.liquidated.position is None and r.penalty == 0 and r.covered == 0
    h.ledger.check_invariants(h.net_deposits)


def test_liquidate_healthy_position_rejects(h) -> None:
    _m, l_, b = _scenario(h)
    h.set_price(520_000, 100)  # equity 197,000,000 >= MMR 156,000,000
    slot = _bid(h, b, 520_000, 10_000)
    h.reject(
        Liquidate(0, l_.account_id, b.account_id, slot, 10_000, 520_000, 100), "not_liquidatable"
    )


def test_liquidate_stale_mark_rejects(liq) -> None:
    h, _m, l_, b = liq
    slot = _bid(h, b, 505_000, 10_000)
    for ts in (161, 99):
        h.reject(
            Liquidate(0, l_.account_id, b.account_id, slot, 10_000, 505_000, ts), "stale_price"
        )
    h.ledger.apply(Liquidate(0, l_.account_id, b.account_id, slot, 10_000, 505_000, 160))


def test_liquidate_funding_settled_before_the_check(liq) -> None:
    h, _m, l_, b = liq
    # funding at -10,000 ppm (shorts pay longs 1%/8 h): index -5,100,000,000 at mark 510,000
    h.ledger.apply(Funding(0, 0, 100))
    h.set_price(510_000, 100 + 28_800)
    h.ledger.apply(Funding(0, -10_000, 100 + 28_800))
    # L receives floor(5.1e9 * 10,000 / 1e6) = 51,000,000: equity 148,000,000 < MMR 153,000,000
    pos = h.ledger.position(l_.account_id, 0)
    assert risk.pending_funding(pos, h.ledger.market(0)) == 51_000_000
    slot = _bid(h, b, 505_000, 10_000)
    r = h.ledger.apply(
        Liquidate(0, l_.account_id, b.account_id, slot, 10_000, 505_000, 100 + 28_800)
    )
    assert r.liquidated.funding == 51_000_000
    # quote -5,003,000,000 + 51,000,000 + 5,050,000,000 = 98,000,000: penalty 75,750,000
    assert (r.penalty, r.liquidated.released) == (75_750_000, 22_250_000)
    h.ledger.check_invariants(h.net_deposits)


def test_liquidate_maker_rebate_capped_at_zero(harness_factory) -> None:
    h = harness_factory([dataclasses.replace(BTC_USD, maker_fee_ppm=-100)])
    _m, l_, b = _scenario(h)
    h.set_price(510_000, 100)
    slot = _bid(h, b, 505_000, 10_000)
    r = h.ledger.apply(Liquidate(0, l_.account_id, b.account_id, slot, 10_000, 505_000, 110))
    assert r.maker.fee == 0


def test_liquidate_maker_side_and_identity_rejects(liq, insurance) -> None:
    h, _m, l_, b = liq
    ask = h.place(b, False, 505_000, 10_000).order.slot
    h.reject(Liquidate(0, l_.account_id, b.account_id, ask, 10_000, 505_000, 110), "same_side")
    own = _bid(h, l_, 505_000, 10_000)
    h.reject(Liquidate(0, l_.account_id, l_.account_id, own, 10_000, 505_000, 110), "self_trade")
    h.reject(
        Liquidate(0, INSURANCE_ACCOUNT, b.account_id, ask, 1, 505_000, 110), "insurance_account"
    )


def test_liquidate_maker_order_checks_reject(liq) -> None:
    h, _m, l_, b = liq
    slot = _bid(h, b, 505_000, 100, expiry=105)
    t = Liquidate(0, l_.account_id, b.account_id, slot, 100, 505_000, 110)
    h.reject(t, "expired")
    h.reject(dataclasses.replace(t, timestamp=100, price=506_000), "maker_price")
    h.reject(dataclasses.replace(t, timestamp=100, size=101), "overfill")
    h.reject(dataclasses.replace(t, maker_slot=slot + 1), "no_order")
    ioc = _bid(h, b, 505_000, 100, tif=TIF_IOC)
    h.reject(dataclasses.replace(t, maker_slot=ioc, timestamp=100), "maker_not_resting")
    h.ledger.apply(h.cancel_tx(b, h.ledger.order(b.account_id, slot).nonce))
    h.reject(dataclasses.replace(t, timestamp=100), "order_closed")


def test_liquidate_maker_without_margin_rejects(liq) -> None:
    h, _m, l_, _b = liq
    poor = h.funded(1_000_000, 1_000_000)
    slot = _bid(h, poor, 505_000, 10_000)
    h.reject(
        Liquidate(0, l_.account_id, poor.account_id, slot, 10_000, 505_000, 110),
        "insufficient_margin",
    )


def test_liquidate_missing_position_rejects(liq, new_user) -> None:
    h, _m, l_, b = liq
    flat = h.funded(1_000_000, 1_000_000)
    slot = _bid(h, b, 505_000, 10_000)
    h.reject(Liquidate(0, flat.account_id, b.account_id, slot, 1, 505_000, 110), "no_position")
    h.reject(Liquidate(1, l_.account_id, b.account_id, slot, 1, 505_000, 110), "no_position")
    h.reject(Liquidate(5, l_.account_id, b.account_id, slot, 1, 505_000, 110), "unknown_market")


@pytest.mark.parametrize(
    "change",
    [{"maker_slot": 64}, {"size": -1}, {"price": 1 << 64}, {"account_id": None}, {"timestamp": -1}],
)
def test_liquidate_malformed_fields_reject(liq, change) -> None:
    h, _m, l_, b = liq
    t = Liquidate(0, l_.account_id, b.account_id, 0, 1, 505_000, 110)
    h.reject(dataclasses.replace(t, **change), "malformed")


# -- BACKSTOP --------------------------------------------------------------------------------------


def test_backstop_insurance_takes_position_as_is(liq) -> None:
    h, _m, l_, _b = liq
    others = _others(h, l_.account_id, INSURANCE_ACCOUNT)
    r = h.ledger.apply(Backstop(0, l_.account_id, 110))
    taken = Position(INSURANCE_ACCOUNT, 0, 10_000, L_QUOTE, 6_000_000_000, 0)
    assert r.insurance_position == taken == h.ledger.position(INSURANCE_ACCOUNT, 0)
    assert (r.size, r.quote, r.insurance_fund, r.insurance_equity) == (
        10_000,
        L_QUOTE,
        0,
        97_000_000,
    )
    assert h.ledger.position(l_.account_id, 0) is None
    assert h.ledger.account(l_.account_id).collateral == 0  # the owner gets nothing
    assert r.open_interest == h.ledger.market(0).open_interest == 10_000
    assert h.ledger.insurance_equity() == 97_000_000
    assert _others(h, l_.account_id, INSURANCE_ACCOUNT) == others
    h.ledger.check_invariants(h.net_deposits)


def test_backstop_nets_against_opposite_insurance_position(h) -> None:
    _m, l_, b = _scenario(h)
    s = h.funded(200_000_000, 200_000_000)
    h.fill(b, s, 5_000, 600_000, taker_is_buy=False)  # S short 5,000: quote 3,198,500,000
    h.set_price(510_000, 100)
    h.ledger.apply(Backstop(0, l_.account_id, 100))  # insurance long 10,000
    h.set_price(635_000, 200)  # S: equity 23,500,000 < MMR 95,250,000
    r = h.ledger.apply(Backstop(0, s.account_id, 200))
    # merged: size 5,000, quote -5,003,000,000 + 3,198,500,000, basis 6e9 - trunc(6e9 / 2)
    assert r.insurance_position == Position(
        INSURANCE_ACCOUNT, 0, 5_000, -1_804_500_000, 3_000_000_000, 0
    )
    assert r.insurance_equity == -1_804_500_000 + 5_000 * 635_000
    assert r.open_interest == 5_000 + 5_000  # B's long 5,000 + the insurance account's 5,000
    h.ledger.check_invariants(h.net_deposits)


def test_backstop_netting_flat_moves_quote_to_fund(h) -> None:
    # two liquidated positions of opposite 10,000: the second takeover nets the fund flat
    _m, l_, b = _scenario(h)
    s = h.funded(500_000_000, 500_000_000)
    h.fill(b, s, 10_000, 600_000, taker_is_buy=False)  # S: quote 5e8 + 6e9 - 3e6
    h.set_price(510_000, 100)
    h.ledger.apply(Backstop(0, l_.account_id, 100))
    h.set_price(650_000, 200)  # S: equity 6,497,000,000 - 6.5e9 = -3,000,000 < MMR
    r = h.ledger.apply(Backstop(0, s.account_id, 200))
    assert r.insurance_position is None
    assert r.insurance_fund == L_QUOTE + 6_497_000_000 == 1_494_000_000
    assert h.ledger.position(INSURANCE_ACCOUNT, 0) is None
    h.ledger.check_invariants(h.net_deposits)


def test_backstop_solvency_boundary(h) -> None:
    # L1 is liquidated at 505,000 (fund +47,000,000); L2 (the same long) is worth
    # 10,000 m - 5,003,000,000: exactly -47,000,000 at 495,600 (fund + equity = 0: accepted)
    m, l1, b = _scenario(h)
    l2 = h.funded(1_000_000_000, 1_000_000_000)
    h.fill(m, l2, 10_000, 600_000)
    h.set_price(510_000, 100)
    slot = _bid(h, b, 505_000, 10_000)
    h.ledger.apply(Liquidate(0, l1.account_id, b.account_id, slot, 10_000, 505_000, 100))
    assert h.ledger.exchange.insurance_fund == 47_000_000
    h.set_price(495_599, 200)
    h.reject(Backstop(0, l2.account_id, 200), "insurance_insolvent")
    h.set_price(495_600, 201)
    r = h.ledger.apply(Backstop(0, l2.account_id, 201))
    assert r.insurance_equity == 0
    h.ledger.check_invariants(h.net_deposits)


def test_backstop_solvency_counts_other_markets(h) -> None:
    # the fund holds a profitable ETH position; it pays for taking a bankrupt BTC position over
    m, l_, _b = _scenario(h)
    e = h.funded(1_000_000_000, 0)
    h.margin(e, 1, 1_000_000_000)
    h.margin(m, 1, 10_000_000_000)
    h.fill(m, e, 10_000, 300_000, market_id=1)  # E long 10,000 ETH lots, quote -2,001,500,000
    h.set_price(205_000, 100, market_id=1)  # E: equity 48,500,000 < MMR 61,500,000
    h.ledger.apply(Backstop(1, e.account_id, 100))
    h.set_price(400_000, 200, market_id=1)  # the fund's ETH long is now worth 1,998,500,000
    h.set_price(490_000, 200)  # L is bankrupt: equity -103,000,000
    r = h.ledger.apply(Backstop(0, l_.account_id, 200))
    assert r.insurance_equity == -103_000_000 + 4_000_000_000 - 2_001_500_000
    assert index_in(r.touched, position_index(INSURANCE_ACCOUNT, 1), market_index(1))
    h.ledger.check_invariants(h.net_deposits)


def index_in(touched, *indices) -> bool:
    return all(i in touched for i in indices)


def test_backstop_rejections(liq) -> None:
    h, m, l_, b = liq
    h.reject(Backstop(0, INSURANCE_ACCOUNT, 110), "insurance_account")
    h.reject(Backstop(0, b.account_id, 110), "no_position")
    h.reject(Backstop(0, l_.account_id, 161), "stale_price")
    h.reject(Backstop(0, m.account_id, 110), "not_liquidatable")
    h.reject(Backstop(7, l_.account_id, 110), "unknown_market")
    h.reject(Backstop(0, l_.account_id, 1 << 64), "malformed")


def test_backstop_settles_funding_of_both_positions(liq) -> None:
    h, _m, l_, b = liq
    h.ledger.apply(Backstop(0, l_.account_id, 110))  # the insurance account: long 10,000
    h.ledger.apply(Funding(0, 0, 110))
    h.set_price(510_000, 110 + 3_600)
    h.ledger.apply(Funding(0, -8_000, 110 + 3_600))  # index -510,000,000 (-8,000 ppm for 1 h)
    s = h.funded(200_000_000, 200_000_000)
    h.fill(b, s, 5_000, 510_000, taker_is_buy=False)  # S short: quote 2,748,725,000
    h.set_price(540_000, 110 + 3_601)  # S: equity 48,725,000 < MMR 81,000,000
    r = h.ledger.apply(Backstop(0, s.account_id, 110 + 3_601))
    # the insurance long receives floor(510,000,000 * 10,000 / 1e6) = 5,100,000 first
    assert (r.funding, r.insurance_funding) == (0, 5_100_000)
    assert r.insurance_position.quote == L_QUOTE + 5_100_000 + 2_748_725_000
    assert r.insurance_position.funding_index == -510_000_000
    h.ledger.check_invariants(h.net_deposits)


# -- DELEVERAGE ------------------------------------------------------------------------------------


@pytest.fixture
def bankrupt(h):
    m, l_, b = _scenario(h)
    h.set_price(490_000, 100)
    return h, m, l_, b


def test_deleverage_full_closes_at_bankruptcy_price(bankrupt) -> None:
    h, m, l_, _b = bankrupt
    others = _others(h, l_.account_id, m.account_id)
    r = h.ledger.apply(Deleverage(0, l_.account_id, m.account_id, 10_000, 110))
    # M buys L's 10,000 back for L's whole quote: 5,003,000,000 (= 500,300 per lot, above the
    # mark 490,000): L ends at 0, M closes its short and its quote returns to collateral
    assert r.notional == 5_003_000_000
    assert r.bankrupt.position is None and r.bankrupt.released == 0
    assert r.counterparty.position is None
    assert r.counterparty.released == M_QUOTE - 5_003_000_000
    assert r.counterparty.realized_pnl == 6_000_000_000 - 5_003_000_000
    assert h.ledger.account(m.account_id).collateral == 50_000_000_000 + M_QUOTE - 5_003_000_000
    assert r.open_interest == 0
    assert _others(h, l_.account_id, m.account_id) == others
    h.ledger.check_invariants(h.net_deposits)


def test_deleverage_partial_rounds_against_counterparty(h) -> None:
    m, l_, _b = _scenario(h)
    h.margin(l_, 0, -5)  # quote -5,003,000,005
    h.set_price(490_000, 100)
    r = h.ledger.apply(Deleverage(0, l_.account_id, m.account_id, 3, 110))
    # M pays floor... its quote moves by floor(-5,003,000,005 * 3 / 10,000) = -1,500,901
    assert r.notional == 1_500_901
    assert r.bankrupt.position == Position(
        l_.account_id, 0, 9_997, -5_003_000_005 + 1_500_901, 6_000_000_000 - 1_800_000, 0
    )
    assert r.counterparty.position.quote == M_QUOTE - 1_500_901
    assert r.counterparty.position.size == -9_997
    h.ledger.check_invariants(h.net_deposits)


def test_deleverage_not_bankrupt_rejects(liq) -> None:
    h, m, l_, _b = liq
    h.reject(Deleverage(0, l_.account_id, m.account_id, 10_000, 110), "not_bankrupt")


def test_deleverage_when_fund_can_take_it_rejects(h) -> None:
    m, l1, b = _scenario(h)
    l2 = h.funded(1_000_000_000, 1_000_000_000)
    h.fill(m, l2, 10_000, 600_000)
    h.set_price(510_000, 100)
    slot = _bid(h, b, 505_000, 10_000)
    h.ledger.apply(Liquidate(0, l1.account_id, b.account_id, slot, 10_000, 505_000, 100))
    h.set_price(495_600, 200)  # L2 equity -47,000,000: the 47,000,000 fund can take it
    h.reject(Deleverage(0, l2.account_id, m.account_id, 10_000, 200), "insurance_solvent")
    h.set_price(495_599, 201)
    h.ledger.apply(Deleverage(0, l2.account_id, m.account_id, 10_000, 201))
    h.ledger.check_invariants(h.net_deposits)


def test_deleverage_counterparty_checks_reject(bankrupt) -> None:
    h, m, l_, b = bankrupt
    h.reject(Deleverage(0, l_.account_id, h.funded(1).account_id, 10_000, 110), "no_position")
    h.reject(Deleverage(0, l_.account_id, b.account_id, 10_000, 110), "counterparty_size")
    other = h.funded(10_000_000_000, 5_000_000_000)
    h.fill(b, other, 10, 490_000)  # another long: the same side as L
    h.reject(Deleverage(0, l_.account_id, other.account_id, 10, 110), "counterparty_size")
    c = h.funded(10_000_000_000, 5_000_000_000)
    h.fill(m, c, 5, 490_000, taker_is_buy=False)  # C short 5; M buys 5: short 9,995 left
    h.reject(Deleverage(0, l_.account_id, c.account_id, 6, 110), "counterparty_size")
    h.reject(Deleverage(0, l_.account_id, m.account_id, 10_000, 110), "counterparty_size")
    h.ledger.apply(Deleverage(0, l_.account_id, c.account_id, 5, 110))
    h.reject(Deleverage(0, l_.account_id, l_.account_id, 1, 110), "self_trade")


def test_deleverage_position_checks_reject(bankrupt) -> None:
    h, m, l_, b = bankrupt
    h.reject(Deleverage(0, l_.account_id, m.account_id, 10_001, 110), "liquidation_size")
    h.reject(Deleverage(0, l_.account_id, m.account_id, 0, 110), "bad_size")
    h.reject(Deleverage(0, l_.account_id, m.account_id, 1, 161), "stale_price")
    h.reject(Deleverage(0, INSURANCE_ACCOUNT, m.account_id, 1, 110), "insurance_account")
    h.reject(Deleverage(0, b.account_id, m.account_id, 1, 110), "no_position")
    h.reject(Deleverage(3, l_.account_id, m.account_id, 1, 110), "unknown_market")
    h.reject(Deleverage(0, l_.account_id, m.account_id, 1, None), "malformed")


def test_deleverage_counterparty_closing_below_zero_rejects(h) -> None:
    # C shorts 10,000 at 450,000 with 230 USDC (quote 4,727,750,000); buying back at L's
    # bankruptcy price 500,300 would cost 5,003,000,000 and leave C's closed quote negative
    _m, l_, b = _scenario(h)
    h.set_price(450_000, 100)
    c = h.funded(230_000_000, 230_000_000)
    h.fill(b, c, 10_000, 450_000, taker_is_buy=False)
    assert h.ledger.position(c.account_id, 0).quote == 4_727_750_000
    h.reject(Deleverage(0, l_.account_id, c.account_id, 10_000, 110), "insufficient_margin")
    h.ledger.apply(Deleverage(0, l_.account_id, c.account_id, 9_000, 110))  # stays open


def test_escape_value_counts_pending_funding(liq) -> None:
    h, m, l_, _b = liq
    h.ledger.apply(Backstop(0, l_.account_id, 110))  # the insurance account holds L's long now
    h.ledger.apply(Funding(0, 0, 110))
    h.set_price(510_000, 120)
    h.ledger.apply(Funding(0, 1_000, 120))  # index +177,083 (1,000 ppm for 10 s at 510,000)
    market = h.ledger.market(0)
    short = h.ledger.position(m.account_id, 0)
    assert risk.pending_funding(short, market) == 1_770  # floor(177,083 * 10,000 / 1e6)
    assert risk.escape_value(short, market) == M_QUOTE + 1_770 - 5_100_000_000
