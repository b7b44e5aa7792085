"""Fills: open, add, reduce, flip, close with exact quote/basis/fee/realized numbers; the order
checks (price, side, expiry, overfill, post-only, reduce-only); rejections.

Devnet BTC-USD: notionalExp 0 (1 lot at 1 tick = 1 micro-USDC), maker 100 ppm, taker 500 ppm,
IMF 5%, mark 600,000 ticks. Every number below is worked out by hand in the comments.
"""

from __future__ import annotations

import dataclasses

import pytest

from isoperp.ledger.ledger import AppliedFill, FillSide
from isoperp.ledger.markets import BTC_USD, ETH_USD
from isoperp.ledger.model import Order, Position
from isoperp.ledger.transitions import Fill, Funding
from isoperp.protocol.constants import FLAG_POST_ONLY, FLAG_REDUCE_ONLY, TIF_IOC
from isoperp.protocol.leaves import (
    EXCHANGE_INDEX,
    account_index,
    market_index,
    order_index,
    position_index,
)


def _scenario(h, steps: int):
    """Maker M and taker T with 1,000 USDC margin each, then ``steps`` of the sequence below."""
    m = h.funded(5_000_000_000, 1_000_000_000)
    t = h.funded(5_000_000_000, 1_000_000_000)
    sequence = [
        (10_000, 600_000, True),  # 1 open: T buys 10,000
        (5_000, 600_100, True),  # 2 add: T buys 5,000 more
        (7_000, 601_000, False),  # 3 reduce: T sells 7,000
        (10_000, 599_000, False),  # 4 flip: T sells 10,000 (long 8,000 -> short 2,000)
        (2_000, 598_000, True),  # 5 close: T buys 2,000
    ]
    results = [h.fill(m, t, size, price, taker_is_buy=buy) for size, price, buy in sequence[:steps]]
    return m, t, results


def test_fill_open_sets_quote_basis_fees(h) -> None:
    m, t, (r,) = _scenario(h, 1)
    # n = 10,000 * 600,000 = 6,000,000,000; taker fee 3,000,000; maker fee 600,000
    # T: quote = 1e9 - 6e9 - 3,000,000 = -5,003,000,000; basis +6e9
    # M: quote = 1e9 + 6e9 - 600,000 = 6,999,400,000; basis -6e9
    taker_pos = Position(t.account_id, 0, 10_000, -5_003_000_000, 6_000_000_000, 0)
    maker_pos = Position(m.account_id, 0, -10_000, 6_999_400_000, -6_000_000_000, 0)
    # both orders (nonce 0, slot 0) are filled completely
    maker_order = Order(m.account_id, 0, 0, 0, False, 600_000, 10_000, 10_000, 0, 0, 0)
    taker_order = Order(t.account_id, 0, 0, 0, True, 600_000, 10_000, 10_000, 0, 0, 0)
    assert r == AppliedFill(
        market_id=0,
        size=10_000,
        price=600_000,
        notional=6_000_000_000,
        maker=FillSide(m.account_id, True, False, 600_000, 0, 0, 0, maker_pos, maker_order),
        taker=FillSide(t.account_id, False, True, 3_000_000, 0, 0, 0, taker_pos, taker_order),
        open_interest=10_000,
        fee_balance=3_600_000,
        touched=(
            position_index(m.account_id, 0),
            order_index(m.account_id, 0),
            position_index(t.account_id, 0),
            order_index(t.account_id, 0),
            market_index(0),
            EXCHANGE_INDEX,
        ),
    )
    assert h.ledger.position(t.account_id, 0) == taker_pos
    assert h.ledger.position(m.account_id, 0) == maker_pos
    assert h.ledger.order(m.account_id, 0) == maker_order and not maker_order.live
    assert h.ledger.market(0).open_interest == 10_000
    assert h.ledger.exchange.fee_balance == 3_600_000
    h.ledger.check_invariants(h.net_deposits)


def test_fill_add_increases_basis(h) -> None:
    m, t, results = _scenario(h, 2)
    r = results[-1]
    # n = 5,000 * 600,100 = 3,000,500,000; taker fee ceil(1,500,250) = 1,500,250;
    # maker fee 300,050
    # T: quote = -5,003,000,000 - 3,000,500,000 - 1,500,250 = -8,005,000,250;
    #    basis = 6e9 + 3,000,500,000 = 9,000,500,000
    #    margin at mark 600,000: equity = -8,005,000,250 + 9e9 = 994,999,750 >= IMR 450,000,000
    # M: quote = 6,999,400,000 + 3,000,500,000 - 300,050 = 9,999,599,950; basis -9,000,500,000
    assert (r.notional, r.taker.fee, r.maker.fee) == (3_000_500_000, 1_500_250, 300_050)
    assert (r.taker.realized_pnl, r.maker.realized_pnl) == (0, 0)
    assert h.ledger.position(t.account_id, 0) == Position(
        t.account_id, 0, 15_000, -8_005_000_250, 9_000_500_000, 0
    )
    assert h.ledger.position(m.account_id, 0) == Position(
        m.account_id, 0, -15_000, 9_999_599_950, -9_000_500_000, 0
    )
    assert h.ledger.exchange.fee_balance == 3_600_000 + 1_800_300
    assert r.open_interest == 15_000
    h.ledger.check_invariants(h.net_deposits)


def test_fill_reduce_realizes_pnl_with_truncated_basis(h) -> None:
    m, t, results = _scenario(h, 3)
    r = results[-1]
    # T sells 7,000 at 601,000: n = 4,207,000,000; taker fee 2,103,500; maker fee 420,700
    # T: removed = trunc(9,000,500,000 * 7,000 / 15,000) = trunc(4,200,233,333.3) = 4,200,233,333
    #    realized = 4,207,000,000 - 4,200,233,333 = 6,766,667
    #    basis = 9,000,500,000 - 4,200,233,333 = 4,800,266,667
    #    quote = -8,005,000,250 + 4,207,000,000 - 2,103,500 = -3,800,103,750
    # M (short, buys back 7,000): removed = trunc(-4,200,233,333.3) = -4,200,233,333 (toward 0)
    #    realized = -4,207,000,000 + 4,200,233,333 = -6,766,667
    #    basis = -9,000,500,000 + 4,200,233,333 = -4,800,266,667
    #    quote = 9,999,599,950 - 4,207,000,000 - 420,700 = 5,792,179,250
    assert (r.notional, r.taker.fee, r.maker.fee) == (4_207_000_000, 2_103_500, 420_700)
    assert (r.taker.realized_pnl, r.maker.realized_pnl) == (6_766_667, -6_766_667)
    assert (r.taker.is_buy, r.maker.is_buy) == (False, True)
    assert h.ledger.position(t.account_id, 0) == Position(
        t.account_id, 0, 8_000, -3_800_103_750, 4_800_266_667, 0
    )
    assert h.ledger.position(m.account_id, 0) == Position(
        m.account_id, 0, -8_000, 5_792_179_250, -4_800_266_667, 0
    )
    assert h.ledger.exchange.fee_balance == 5_400_300 + 2_524_200
    assert r.open_interest == 8_000
    h.ledger.check_invariants(h.net_deposits)


def test_fill_flip_closes_then_opens_rest(h) -> None:
    m, t, results = _scenario(h, 4)
    r = results[-1]
    # T sells 10,000 at 599,000: n = 5,990,000,000; taker fee 2,995,000; maker fee 599,000
    # T: close 8,000: realized = 8,000 * 599,000 - 4,800,266,667 = 4,792,000,000 - 4,800,266,667
    #    = -8,266,667; open 2,000 short: basis = -1,198,000,000
    #    quote = -3,800,103,750 + 5,990,000,000 - 2,995,000 = 2,186,901,250
    #    a flip is checked: equity at mark = 2,186,901,250 - 1,200,000,000 = 986,901,250
    #    >= IMR 60,000,000
    # M: close 8,000 short: realized = -4,792,000,000 + 4,800,266,667 = 8,266,667;
    #    open 2,000 long: basis 1,198,000,000
    #    quote = 5,792,179,250 - 5,990,000,000 - 599,000 = -198,419,750
    assert (r.taker.realized_pnl, r.maker.realized_pnl) == (-8_266_667, 8_266_667)
    assert (r.taker.fee, r.maker.fee) == (2_995_000, 599_000)
    assert h.ledger.position(t.account_id, 0) == Position(
        t.account_id, 0, -2_000, 2_186_901_250, -1_198_000_000, 0
    )
    assert h.ledger.position(m.account_id, 0) == Position(
        m.account_id, 0, 2_000, -198_419_750, 1_198_000_000, 0
    )
    assert h.ledger.exchange.fee_balance == 7_924_500 + 3_594_000
    assert r.open_interest == 2_000  # now M is the long side
    h.ledger.check_invariants(h.net_deposits)


def test_fill_close_flattens_and_returns_margin(h) -> None:
    m, t, results = _scenario(h, 5)
    r = results[-1]
    # T buys 2,000 at 598,000: n = 1,196,000,000; taker fee 598,000; maker fee 119,600
    # T: realized = -1,196,000,000 + 1,198,000,000 = 2,000,000; basis 0
    #    quote = 2,186,901,250 - 1,196,000,000 - 598,000 = 990,303,250
    # M: realized = 1,196,000,000 - 1,198,000,000 = -2,000,000
    #    quote = -198,419,750 + 1,196,000,000 - 119,600 = 997,460,650
    # fees: 11,518,500 + 717,600 = 12,236,100; the two quotes plus fees are the 2e9 moved in.
    # Both positions end flat: their quotes move back to free collateral, the leaves go away.
    assert (r.taker.realized_pnl, r.maker.realized_pnl) == (2_000_000, -2_000_000)
    assert (r.taker.released, r.maker.released) == (990_303_250, 997_460_650)
    assert r.taker.position is None and r.maker.position is None
    assert h.ledger.position(t.account_id, 0) is None and h.ledger.position(m.account_id, 0) is None
    assert h.ledger.leaf_bytes(position_index(t.account_id, 0)) is None
    assert h.ledger.account(t.account_id).collateral == 4_000_000_000 + 990_303_250
    assert h.ledger.account(m.account_id).collateral == 4_000_000_000 + 997_460_650
    assert h.ledger.exchange.fee_balance == 12_236_100
    assert 990_303_250 + 997_460_650 + 12_236_100 == 2_000_000_000
    assert r.open_interest == 0
    assert account_index(t.account_id) in r.touched and account_index(m.account_id) in r.touched
    h.ledger.check_invariants(h.net_deposits)
    # realized PnL over the round trips: T 6,766,667 - 8,266,667 + 2,000,000 = 500,000, less fees
    h.reject(h.margin_tx(t, 0, -1), "no_position")
    h.withdraw(t, 4_990_303_250)
    h.ledger.check_invariants(h.net_deposits)


def test_fill_close_to_zero_quote_deletes_position(harness_factory) -> None:
    # zero fees, IMF 50%, mark 100: A (margin 50) buys 1 at 100 -> quote -50, equity 50 >= IMR 50;
    # A sells 1 at 50 -> quote 0, size 0: the position is empty and its leaf is deleted, nothing
    # to release; B closes with quote 1,050, which moves back to its free collateral
    market = dataclasses.replace(
        BTC_USD, mark_price=100, imf_ppm=500_000, maker_fee_ppm=0, taker_fee_ppm=0
    )
    h = harness_factory([market])
    a = h.funded(1_000, 50)
    b = h.funded(1_000, 1_000)
    h.fill(b, a, 1, 100, taker_is_buy=True)
    assert h.ledger.position(a.account_id, 0) == Position(a.account_id, 0, 1, -50, 100, 0)
    r = h.fill(b, a, 1, 50, taker_is_buy=False)
    assert r.taker.position is None and r.taker.realized_pnl == -50 and r.taker.released == 0
    assert account_index(a.account_id) not in r.touched
    assert h.ledger.position(a.account_id, 0) is None
    assert h.ledger.leaf_bytes(position_index(a.account_id, 0)) is None
    assert h.ledger.account(a.account_id).collateral == 950
    assert r.maker.released == 1_050 and h.ledger.position(b.account_id, 0) is None
    assert h.ledger.account(b.account_id).collateral == 1_050
    h.ledger.check_invariants(h.net_deposits)
    h.reject(h.fill_tx(b, a, 1, 100), "no_position")


def test_fill_maker_rebate_paid_from_taker_fee(harness_factory) -> None:
    # maker -100 ppm (rebate), taker 500 ppm; n = 6e9: maker receives 600,000, taker pays 3,000,000
    h = harness_factory([dataclasses.replace(BTC_USD, maker_fee_ppm=-100)])
    m = h.funded(5_000_000_000, 1_000_000_000)
    t = h.funded(5_000_000_000, 1_000_000_000)
    r = h.fill(m, t, 10_000, 600_000, taker_is_buy=True)
    assert (r.maker.fee, r.taker.fee, r.fee_balance) == (-600_000, 3_000_000, 2_400_000)
    assert h.ledger.position(m.account_id, 0).quote == 1_000_000_000 + 6_000_000_000 + 600_000
    h.ledger.check_invariants(h.net_deposits)


def test_fill_rebate_rounds_down_fee_rounds_up(harness_factory) -> None:
    # n = 19,999: rebate floor(1.9999) = 1; taker fee ceil(9.9995) = 10
    h = harness_factory([dataclasses.replace(BTC_USD, maker_fee_ppm=-100, mark_price=19_999)])
    m = h.funded(1_000_000, 100_000)
    t = h.funded(1_000_000, 100_000)
    r = h.fill(m, t, 1, 19_999, taker_is_buy=False)
    assert (r.notional, r.maker.fee, r.taker.fee, r.fee_balance) == (19_999, -1, 10, 9)
    assert h.ledger.position(m.account_id, 0).quote == 100_000 - 19_999 + 1
    assert h.ledger.position(t.account_id, 0).quote == 100_000 + 19_999 - 10


def test_fill_rebate_beyond_fee_balance_rejects_fee_underflow(harness_factory) -> None:
    # market 1 pays the maker 500 ppm and charges the taker 100 ppm: net -400 ppm out of the pool
    generous = dataclasses.replace(ETH_USD, maker_fee_ppm=-500, taker_fee_ppm=100)
    h = harness_factory([BTC_USD, generous])
    m = h.funded(5_000_000_000)
    t = h.funded(5_000_000_000)
    for user in (m, t):
        h.margin(user, 0, 1_000_000_000)
        h.margin(user, 1, 1_000_000_000)
    # n = 1,000 * 300,000 = 300,000,000: maker rebate 150,000, taker fee 30,000 -> net -120,000
    h.reject(h.fill_tx(m, t, 1_000, 300_000, market_id=1), "fee_underflow")
    # market 0 fees fill the pool: n = 1,000 * 600,000 = 6e8 -> 300,000 + 60,000 = 360,000
    h.fill(m, t, 1_000, 600_000, market_id=0)
    assert h.ledger.exchange.fee_balance == 360_000
    r = h.fill(m, t, 1_000, 300_000, market_id=1)
    assert (r.maker.fee, r.taker.fee, r.fee_balance) == (-150_000, 30_000, 240_000)
    h.ledger.check_invariants(h.net_deposits)


def test_fill_taker_imr_boundary(h) -> None:
    # T has 1,000 USDC margin and buys s lots at the mark 600,000: n = 600,000 s, fee = 300 s,
    # equity = 1e9 - 300 s, IMR = 30,000 s -> s <= 1e9 / 30,300 = 33,003.3
    #   s = 33,003: equity 990,099,100 >= IMR 990,090,000;  s = 33,004: 990,098,800 < 990,120,000
    m = h.funded(50_000_000_000, 50_000_000_000)
    t = h.funded(1_000_000_000, 1_000_000_000)
    e = h.reject(h.fill_tx(m, t, 33_004, 600_000), "insufficient_margin")
    assert "990098800" in e.message.replace(",", "") and "990120000" in e.message
    r = h.fill(m, t, 33_003, 600_000)
    assert r.taker.position.equity(600_000, BTC_USD) == 990_099_100
    assert r.taker.position.initial_margin(600_000, BTC_USD) == 990_090_000


def test_fill_maker_insufficient_margin_rejects(h) -> None:
    m = h.funded(1_000_000_000, 1_000)
    t = h.funded(50_000_000_000, 50_000_000_000)
    h.reject(h.fill_tx(m, t, 10, 600_000), "insufficient_margin")


def test_fill_margin_checked_at_mark_not_trade_price(h) -> None:
    # buying 1,000 lots at 300,000 (half the mark) is an instant paper gain at the mark:
    # T quote = 1,000,000 - 300,000,000 - 150,000 = -299,150,000; equity at mark 600,000 =
    # 300,850,000 >= IMR 30,000,000 although the margin is tiny
    m = h.funded(50_000_000_000, 50_000_000_000)
    t = h.funded(1_000_000, 1_000_000)
    r = h.fill(m, t, 1_000, 300_000)
    assert r.taker.position.equity(600_000, BTC_USD) == 300_850_000


def test_fill_reduce_lowering_equity_over_mmr_rejects(h) -> None:
    # T: 400 USDC margin, buys 10,000 at 600,000 -> quote = 4e8 - 6e9 - 3e6 = -5,603,000,000
    #    (equity 397,000,000 >= IMR 300,000,000; MMR 180,000,000)
    # T sells 5,000 at 540,000: n = 2.7e9, fee 1,350,000 -> quote = -2,904,350,000, size 5,000;
    #    equity at mark = 95,650,000 < IMR 150,000,000, and equity/MMR falls from
    #    397/180 to 95.65/90: 95,650,000 * 180,000,000 < 397,000,000 * 90,000,000 -> rejected
    m = h.funded(50_000_000_000, 50_000_000_000)
    t = h.funded(400_000_000, 400_000_000)
    h.fill(m, t, 10_000, 600_000)
    h.reject(h.fill_tx(m, t, 5_000, 540_000, taker_is_buy=False), "insufficient_margin")


def test_fill_reduce_below_imr_raising_equity_over_mmr_succeeds(h) -> None:
    # the same long (quote -5,603,000,000) after the mark falls to 570,000: equity 97,000,000
    # < IMR 285,000,000 (even < MMR 171,000,000). Selling 5,000 at 570,000:
    #   n = 2,850,000,000, fee 1,425,000 -> quote -2,754,425,000, equity 95,575,000 < IMR
    #   142,500,000; MMR 171,000,000 -> 85,500,000; 95,575,000 * 171e6 >= 97e6 * 85.5e6: accepted
    m = h.funded(50_000_000_000, 50_000_000_000)
    t = h.funded(400_000_000, 400_000_000)
    h.fill(m, t, 10_000, 600_000)
    h.set_price(570_000, 100)
    r = h.fill(m, t, 5_000, 570_000, taker_is_buy=False)
    pos = r.taker.position
    assert pos == Position(t.account_id, 0, 5_000, -2_754_425_000, 3_000_000_000, 0)
    assert pos.equity(570_000, BTC_USD) == 95_575_000 < pos.initial_margin(570_000, BTC_USD)
    assert r.taker.realized_pnl == 2_850_000_000 - 3_000_000_000
    # adding to it now is checked against the initial margin and fails
    h.reject(h.fill_tx(m, t, 1, 570_000), "insufficient_margin")
    h.ledger.check_invariants(h.net_deposits)


def test_fill_flip_is_margin_checked(h) -> None:
    # T: 305 USDC margin, buys 10,000 at 600,000 -> quote = -5,698,000,000, equity 302,000,000
    # flipping to short 10,000 at 600,000: quote = -5,698,000,000 + 12e9 - 6e6 = 6,296,000,000,
    # equity = 296,000,000 < IMR 300,000,000 -> rejected although |size| did not grow
    m = h.funded(50_000_000_000, 50_000_000_000)
    t = h.funded(305_000_000, 305_000_000)
    h.fill(m, t, 10_000, 600_000)
    h.reject(h.fill_tx(m, t, 20_000, 600_000, taker_is_buy=False), "insufficient_margin")
    # closing it is fine: quote = -5,698,000,000 + 6e9 - 3e6 = 299,000,000 goes back to collateral
    r = h.fill(m, t, 10_000, 600_000, taker_is_buy=False)
    assert r.taker.released == 299_000_000
    assert h.ledger.account(t.account_id).collateral == 299_000_000


def test_fill_close_with_negative_quote_rejects(harness_factory) -> None:
    # zero fees, IMF 50%, mark 100: A (margin 50) buys 1 at 100 -> quote -50; selling it back at
    # 49 would leave quote -1 on a flat position (dYdX: a closed position keeps quote >= 0)
    market = dataclasses.replace(
        BTC_USD, mark_price=100, imf_ppm=500_000, maker_fee_ppm=0, taker_fee_ppm=0
    )
    h = harness_factory([market])
    a = h.funded(1_000, 50)
    b = h.funded(1_000, 1_000)
    h.fill(b, a, 1, 100)
    e = h.reject(h.fill_tx(b, a, 1, 49, taker_is_buy=False), "insufficient_margin")
    assert "quote -1" in e.message


def test_fill_settles_funding_first(h) -> None:
    # T long 10,000 and M short 10,000 at index 0; funding at 10,000 ppm (1%) for 8 h at mark
    # 600,000 moves the index by 10,000 * 28,800 * 600,000 / 28,800 = 6,000,000,000 (micro-USDC
    # per lot, x1e6): T pays floor(-6e9 * 10,000 / 1e6) = -60,000,000 (1% of $6,000), M receives
    # it, both at their next touch
    m, t, _ = _scenario(h, 1)
    h.set_price(600_000, 1_000)
    h.ledger.apply(Funding(0, 0, 1_000))  # starts the clock
    h.set_price(600_000, 1_000 + 28_800)
    r = h.ledger.apply(Funding(0, 10_000, 1_000 + 28_800))
    assert r.index_delta == 6_000_000_000
    f = h.fill(m, t, 1_000, 600_000, taker_is_buy=False)  # T sells 1,000 back to M
    assert (f.taker.funding, f.maker.funding) == (-60_000_000, 60_000_000)
    # T: -5,003,000,000 - 60,000,000 + 600,000,000 - 300,000 = -4,463,300,000
    assert f.taker.position.quote == -4_463_300_000
    assert f.taker.position.funding_index == f.maker.position.funding_index == 6_000_000_000
    h.ledger.check_invariants(h.net_deposits)


def test_fill_partial_fills_accumulate_until_closed(h) -> None:
    m = h.funded(5_000_000_000, 1_000_000_000)
    t = h.funded(5_000_000_000, 1_000_000_000)
    maker = h.place(m, False, 600_000, 100).order
    taker = h.place(t, True, 600_100, 250).order
    fill = Fill(0, m.account_id, maker.slot, t.account_id, taker.slot, 60, 600_000, 7)
    r1 = h.ledger.apply(fill)
    assert (r1.maker.order.filled, r1.taker.order.filled) == (60, 60)
    r2 = h.ledger.apply(dataclasses.replace(fill, size=40))
    assert not r2.maker.order.live and r2.taker.order.remaining == 150
    h.reject(dataclasses.replace(fill, size=1), "order_closed")
    assert h.ledger.position(t.account_id, 0).size == 100


# -- rejections ------------------------------------------------------------------------------------


@pytest.fixture
def gridded(harness_factory):
    """A market with price tick 10, size step 5, min size 10; two funded users with a resting
    sell order of M (slot 0: 100 lots at 600,010) and a buy order of T (slot 0: 100 at 600,100)."""
    h = harness_factory([dataclasses.replace(BTC_USD, price_tick=10, size_step=5, min_size=10)])
    m = h.funded(5_000_000_000, 1_000_000_000)
    t = h.funded(5_000_000_000, 1_000_000_000)
    h.place(m, False, 600_010, 100)
    h.place(t, True, 600_100, 100)
    return h, m, t


def _fill(m, t, size=10, price=600_010, **kw):
    fill = Fill(0, m.account_id, 0, t.account_id, 0, size, price, 7)
    return dataclasses.replace(fill, **kw)


@pytest.mark.parametrize("price", [600_005, 1, 9, 0])
def test_fill_off_tick_rejects(gridded, price: int) -> None:
    h, m, t = gridded
    h.reject(_fill(m, t, price=price), "off_tick")


@pytest.mark.parametrize("size", [0, 12, 14])
def test_fill_bad_size_rejects(gridded, size: int) -> None:
    h, m, t = gridded
    h.reject(_fill(m, t, size=size), "bad_size")


def test_fill_on_grid_succeeds(gridded) -> None:
    h, m, t = gridded
    assert h.ledger.apply(_fill(m, t, size=15)).size == 15
    # a fill may be smaller than the market's minimum order size (min size binds orders)
    assert h.ledger.apply(_fill(m, t, size=5)).size == 5


def test_fill_unknown_market_rejects(gridded) -> None:
    h, m, t = gridded
    h.reject(_fill(m, t, market_id=2), "unknown_market")


def test_fill_self_trade_rejects(gridded) -> None:
    h, m, _ = gridded
    h.place(m, True, 600_010, 100)  # M's own buy order in slot 1
    h.reject(Fill(0, m.account_id, 0, m.account_id, 1, 10, 600_010, 7), "self_trade")


def test_fill_missing_order_rejects_no_order(gridded) -> None:
    h, m, t = gridded
    h.reject(_fill(m, t, maker_slot=5), "no_order")
    h.reject(_fill(m, t, taker_slot=5), "no_order")


def test_fill_maker_order_of_other_market_rejects(harness_factory) -> None:
    h = harness_factory()
    m = h.funded(5_000_000_000, 1_000_000_000)
    t = h.funded(5_000_000_000, 1_000_000_000)
    h.place(m, False, 300_000, 10, market_id=1)
    h.place(t, True, 300_000, 10)
    h.reject(Fill(0, m.account_id, 0, t.account_id, 0, 10, 300_000, 7), "market_mismatch")
    h.reject(Fill(1, m.account_id, 0, t.account_id, 0, 10, 300_000, 7), "market_mismatch")


def test_fill_same_side_rejects(gridded) -> None:
    h, m, t = gridded
    h.place(t, False, 600_010, 100)  # T's sell order, slot 1
    h.reject(_fill(m, t, taker_slot=1), "same_side")


def test_fill_maker_ioc_rejects_maker_not_resting(gridded) -> None:
    h, m, t = gridded
    h.place(m, False, 600_010, 100, tif=TIF_IOC)  # slot 1
    h.reject(_fill(m, t, maker_slot=1), "maker_not_resting")


def test_fill_post_only_taker_rejects(gridded) -> None:
    h, m, t = gridded
    h.place(t, True, 600_100, 100, flags=FLAG_POST_ONLY)  # slot 1
    h.reject(_fill(m, t, taker_slot=1), "post_only_taker")
    # a post-only order is fine as the maker
    h.place(m, False, 600_010, 100, flags=FLAG_POST_ONLY)  # M's slot 1
    assert h.ledger.apply(_fill(m, t, maker_slot=1)).size == 10


def test_fill_price_not_the_makers_rejects(gridded) -> None:
    h, m, t = gridded
    h.reject(_fill(m, t, price=600_020), "maker_price")


def test_fill_beyond_taker_limit_rejects(gridded) -> None:
    h, m, t = gridded
    h.place(m, False, 600_110, 100)  # slot 1: above T's limit 600,100
    h.reject(_fill(m, t, maker_slot=1, price=600_110), "taker_price")
    h.place(t, False, 600_000, 100)  # T sells with limit 600,000 (slot 1)
    h.place(m, True, 599_990, 100)  # M bids 599,990 (slot 2): below the seller's limit
    h.reject(_fill(m, t, maker_slot=2, taker_slot=1, price=599_990), "taker_price")
    h.place(m, True, 600_050, 100)  # slot 3: better than the seller's limit fills
    assert h.ledger.apply(_fill(m, t, maker_slot=3, taker_slot=1, price=600_050)).price == 600_050


@pytest.mark.parametrize("maker_expires", [True, False])
def test_fill_after_expiry_rejects(gridded, maker_expires: bool) -> None:
    h, m, t = gridded
    user = m if maker_expires else t
    h.place(user, not maker_expires, 600_010 if maker_expires else 600_100, 100, expiry=1_000)
    slots = {"maker_slot": 1} if maker_expires else {"taker_slot": 1}
    h.reject(_fill(m, t, timestamp=1_001, **slots), "expired")
    assert h.ledger.apply(_fill(m, t, timestamp=1_000, **slots)).size == 10


def test_fill_beyond_order_size_rejects_overfill(gridded) -> None:
    h, m, t = gridded
    h.reject(_fill(m, t, size=105), "overfill")
    h.ledger.apply(_fill(m, t, size=95))
    h.reject(_fill(m, t, size=10), "overfill")  # 5 left on both orders
    assert h.ledger.apply(_fill(m, t, size=5)).maker.order.filled == 100


def test_fill_reduce_only_that_would_open_rejects(gridded) -> None:
    h, m, t = gridded
    h.place(t, True, 600_100, 100, flags=FLAG_REDUCE_ONLY)  # T is flat: buying would open
    h.reject(_fill(m, t, taker_slot=1), "reduce_only")
    h.ledger.apply(_fill(m, t, size=30))  # T long 30, M short 30
    h.place(m, True, 600_010, 100, flags=FLAG_REDUCE_ONLY)  # M's reduce-only bid, slot 1
    h.place(t, False, 600_000, 100)  # T's sell, slot 2
    # M buying 40 would flip its short 30 into a long 10
    h.reject(_fill(m, t, maker_slot=1, taker_slot=2, size=40), "reduce_only")
    r = h.ledger.apply(_fill(m, t, maker_slot=1, taker_slot=2, size=30))
    assert r.maker.position is None and r.taker.position is None


def test_fill_without_position_rejects(h) -> None:
    m = h.funded(5_000_000, 1_000_000)
    t = h.funded(5_000_000)  # no margin moved in
    h.reject(h.fill_tx(m, t, 1, 600_000), "no_position")
    h.reject(h.fill_tx(t, m, 1, 600_000), "no_position")


def test_fill_size_beyond_int64_rejects_overflow(h) -> None:
    m = h.funded(5_000_000, 1_000_000)
    t = h.funded(5_000_000, 1_000_000)
    h.reject(h.fill_tx(m, t, (1 << 63) + 1, 1), "overflow")


@pytest.mark.parametrize(
    "change",
    [
        {"maker_slot": 64},
        {"taker_slot": -1},
        {"size": -1},
        {"size": 1 << 64},
        {"price": -600_000},
        {"market_id": -1},
        {"maker_id": 1 << 32},
        {"timestamp": None},
        {"taker_id": True},
    ],
)
def test_fill_malformed_fields_reject(gridded, change) -> None:
    h, m, t = gridded
    h.reject(_fill(m, t, **change), "malformed")
