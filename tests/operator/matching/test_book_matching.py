"""Order book matching: priority, partial fills, time in force, reduce-only, STP, expiry, the
ledger veto, cancels and the read-only views."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from isoperp.matching import (
    IncomingOrder,
    Match,
    OrderBook,
    OrderRejected,
    PlaceResult,
    TimeInForce,
)
from isoperp.matching.types import fast_constructor, new_match, new_place_result

NOW = 1_000
GTC, IOC, FOK = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK


def order(
    account: int,
    nonce: int,
    is_buy: bool,
    price: int,
    size: int,
    tif: TimeInForce = GTC,
    **kw: Any,
) -> IncomingOrder:
    return IncomingOrder((account, nonce), account, is_buy, price, size, tif, **kw)


def new_book() -> OrderBook:
    return OrderBook(0, price_tick=1, size_step=1, min_size=1)


def place(book: OrderBook, o: IncomingOrder, **kw: Any) -> PlaceResult:
    result = book.place(o, now=kw.pop("now", NOW), **kw)
    book.check_invariants()
    filled = sum(m.size for m in result.fills)
    assert filled + result.remaining == result.size
    return result


def fills(result: PlaceResult) -> list[tuple[tuple[int, int], int, int]]:
    return [(m.maker, m.price, m.size) for m in result.fills]


# --------------------------------------------------------------------------- priority


def test_place_price_then_time_priority_fills_best_price_first_then_oldest() -> None:
    book = new_book()
    place(book, order(1, 0, False, 102, 5))
    place(book, order(2, 0, False, 101, 5))
    place(book, order(3, 0, False, 101, 5))
    place(book, order(4, 0, False, 100, 5))
    result = place(book, order(9, 0, True, 102, 18))
    assert fills(result) == [((4, 0), 100, 5), ((2, 0), 101, 5), ((3, 0), 101, 5), ((1, 0), 102, 3)]
    assert not result.rested and result.remaining == 0
    assert book.get((1, 0)) is not None and book.get((1, 0)).remaining == 2  # type: ignore[union-attr]
    assert book.depth() == ([], [(102, 2)])


def test_place_sell_taker_fills_highest_bid_first_at_maker_price() -> None:
    book = new_book()
    place(book, order(1, 0, True, 98, 5))
    place(book, order(2, 0, True, 99, 5))
    result = place(book, order(9, 0, False, 90, 7))
    assert fills(result) == [((2, 0), 99, 5), ((1, 0), 98, 2)]
    m = result.fills[0]
    assert (m.maker_account, m.taker, m.taker_account, m.taker_is_buy) == (2, (9, 0), 9, False)


def test_place_partial_fill_keeps_maker_priority() -> None:
    book = new_book()
    place(book, order(1, 0, False, 100, 10))
    place(book, order(2, 0, False, 100, 10))
    assert fills(place(book, order(9, 0, True, 100, 4))) == [((1, 0), 100, 4)]
    assert fills(place(book, order(9, 1, True, 100, 8))) == [((1, 0), 100, 6), ((2, 0), 100, 2)]
    assert book.orders(False)[0].key == (2, 0)
    assert book.orders(False)[0].remaining == 8


def test_place_gtc_remainder_rests_at_limit_and_book_uncrossed() -> None:
    book = new_book()
    place(book, order(1, 0, False, 100, 3))
    result = place(book, order(9, 0, True, 101, 10))
    assert result.rested and result.remaining == 7 and result.size == 10
    assert book.best_bid() == 101 and book.best_ask() is None
    resting = book.get((9, 0))
    assert resting is not None and (resting.size, resting.remaining) == (10, 7)


def test_place_resting_order_joins_back_of_existing_level() -> None:
    book = new_book()
    for account in (1, 2, 3):
        place(book, order(account, 0, True, 100, 1))
    assert [o.key for o in book.orders(True)] == [(1, 0), (2, 0), (3, 0)]
    assert [o.seq for o in book.orders(True)] == [1, 2, 3]


# --------------------------------------------------------------------------- time in force


def test_place_ioc_remainder_discarded() -> None:
    book = new_book()
    place(book, order(1, 0, False, 100, 3))
    result = place(book, order(9, 0, True, 100, 10, IOC))
    assert fills(result) == [((1, 0), 100, 3)]
    assert not result.rested and result.remaining == 7
    assert len(book) == 0


def test_place_ioc_not_crossing_accepted_without_fills() -> None:
    book = new_book()
    place(book, order(1, 0, False, 100, 3))
    result = place(book, order(9, 0, True, 99, 10, IOC))
    assert result == PlaceResult((), False, 10, (), 10)
    assert book.is_used((9, 0))
    with pytest.raises(OrderRejected, match="already placed"):
        book.place(order(9, 0, True, 100, 10, IOC), now=NOW)


def test_place_market_order_is_ioc_bounded_by_worst_price() -> None:
    book = new_book()
    place(book, order(1, 0, False, 100, 2))
    place(book, order(2, 0, False, 105, 2))
    place(book, order(3, 0, False, 120, 2))
    result = place(book, order(9, 0, True, 110, 10, IOC))
    assert fills(result) == [((1, 0), 100, 2), ((2, 0), 105, 2)]
    assert result.remaining == 6 and not result.rested
    assert book.best_ask() == 120 and book.best_bid() is None


def test_place_fok_fills_completely_across_levels() -> None:
    book = new_book()
    place(book, order(1, 0, False, 100, 2))
    place(book, order(2, 0, False, 101, 3))
    result = place(book, order(9, 0, True, 101, 5, FOK))
    assert fills(result) == [((1, 0), 100, 2), ((2, 0), 101, 3)]
    assert result.remaining == 0 and len(book) == 0


def test_place_fok_vetoed_by_ledger_ends_partially_filled() -> None:
    """The FOK check runs before matching; a later veto cannot undo accepted fills."""
    book = new_book()
    place(book, order(1, 0, False, 100, 2))
    place(book, order(2, 0, False, 100, 3))
    result = place(book, order(9, 0, True, 100, 5, FOK), accept=lambda m: m.maker != (2, 0))
    assert fills(result) == [((1, 0), 100, 2)]
    assert result.removed == (((2, 0), "rejected_by_ledger"),)
    assert result.remaining == 3 and not result.rested


def test_place_post_only_rests_when_not_crossing() -> None:
    book = new_book()
    place(book, order(1, 0, False, 100, 2))
    result = place(book, order(9, 0, True, 99, 5, post_only=True))
    assert result.rested and result.fills == ()
    resting = book.get((9, 0))
    assert resting is not None and resting.post_only


# --------------------------------------------------------------------------- reduce-only


def test_place_reduce_only_clipped_to_position() -> None:
    book = new_book()
    place(book, order(1, 0, True, 100, 50))
    result = place(book, order(9, 0, False, 100, 30, reduce_only=True), position=12)
    assert result.size == 12 and fills(result) == [((1, 0), 100, 12)]
    assert result.remaining == 0


def test_place_reduce_only_resting_remainder_never_exceeds_position() -> None:
    book = new_book()
    place(book, order(1, 0, False, 100, 5))
    result = place(book, order(9, 0, True, 101, 30, reduce_only=True), position=-8)
    assert fills(result) == [((1, 0), 100, 5)]
    assert result.rested and result.remaining == 3 and result.size == 8
    resting = book.get((9, 0))
    assert resting is not None and resting.reduce_only and resting.size == 8


def test_place_reduce_only_smaller_than_position_not_clipped() -> None:
    book = new_book()
    result = place(book, order(9, 0, False, 100, 3, reduce_only=True), position=10)
    assert result.size == 3 and result.rested


# --------------------------------------------------------------------------- self-trade, expiry


def test_place_self_trade_removes_resting_maker_and_continues() -> None:
    book = new_book()
    place(book, order(9, 0, False, 100, 5))
    place(book, order(1, 0, False, 100, 5))
    place(book, order(9, 1, False, 101, 5))
    place(book, order(2, 0, False, 101, 5))
    result = place(book, order(9, 2, True, 101, 7))
    assert fills(result) == [((1, 0), 100, 5), ((2, 0), 101, 2)]
    assert result.removed == (((9, 0), "self_trade"), ((9, 1), "self_trade"))
    assert book.get((9, 0)) is None and book.get((9, 1)) is None
    assert book.orders_of(9) == []


def test_place_self_trade_emptying_side_rests_taker() -> None:
    book = new_book()
    place(book, order(9, 0, False, 100, 5))
    result = place(book, order(9, 1, True, 100, 3))
    assert result.fills == () and result.removed == (((9, 0), "self_trade"),)
    assert result.rested and book.best_bid() == 100 and book.best_ask() is None


def test_place_expired_maker_removed_during_matching() -> None:
    book = new_book()
    place(book, order(1, 0, False, 100, 5, expiry=NOW + 10))
    place(book, order(2, 0, False, 100, 5))
    result = place(book, order(9, 0, True, 100, 5), now=NOW + 10)
    assert result.removed == (((1, 0), "expired"),)
    assert fills(result) == [((2, 0), 100, 5)]
    assert len(book) == 0


def test_expire_removes_due_orders_and_forgets_their_keys() -> None:
    book = new_book()
    place(book, order(1, 0, False, 100, 5, expiry=NOW + 10))
    place(book, order(2, 0, True, 90, 5, expiry=NOW + 20))
    place(book, order(3, 0, True, 91, 5))
    place(book, order(4, 0, True, 80, 5, IOC, expiry=NOW + 5))  # accepted, never rests
    assert book.expire(NOW + 4) == []
    assert book.is_used((4, 0))
    assert book.expire(NOW + 9) == []  # not resting, but its key is forgotten at its expiry
    assert not book.is_used((4, 0)) and book.is_used((1, 0))
    assert book.expire(NOW + 10) == [(1, 0)]
    assert not book.is_used((1, 0))
    assert book.expire(NOW + 100) == [(2, 0)]
    book.check_invariants()
    assert [o.key for o in book.orders(True)] == [(3, 0)]
    assert book.is_used((3, 0))  # no expiry: remembered
    assert book.expire(NOW + 100) == []


def test_expire_already_filled_or_cancelled_orders_only_forgets_keys() -> None:
    book = new_book()
    place(book, order(1, 0, False, 100, 5, expiry=NOW + 10))
    place(book, order(1, 1, False, 101, 5, expiry=NOW + 10))
    place(book, order(2, 0, True, 100, 5))
    assert book.cancel((1, 1)) is not None
    assert book.expire(NOW + 10) == []
    assert not book.is_used((1, 0)) and not book.is_used((1, 1))


# --------------------------------------------------------------------------- ledger veto


def test_place_accept_veto_removes_maker_and_continues() -> None:
    book = new_book()
    place(book, order(1, 0, False, 100, 5))
    place(book, order(2, 0, False, 100, 5))
    place(book, order(3, 0, False, 101, 5))
    seen: list[Match] = []

    def accept(m: Match) -> bool:
        seen.append(m)
        return m.maker_account != 2

    result = place(book, order(9, 0, True, 101, 8), accept=accept)
    assert fills(result) == [((1, 0), 100, 5), ((3, 0), 101, 3)]
    assert result.removed == (((2, 0), "rejected_by_ledger"),)
    # accept saw exactly the prospective matches, in order, including the refused one.
    assert [(m.maker, m.size) for m in seen] == [((1, 0), 5), ((2, 0), 3), ((3, 0), 3)]
    assert book.get((2, 0)) is None


def test_place_accept_veto_of_everything_rests_gtc_and_uncrosses() -> None:
    book = new_book()
    place(book, order(1, 0, False, 100, 5))
    result = place(book, order(9, 0, True, 100, 8), accept=lambda m: False)
    assert result.fills == () and result.rested and result.remaining == 8
    assert book.best_bid() == 100 and book.best_ask() is None


# --------------------------------------------------------------------------- cancel, views


def test_cancel_returns_removed_order_once() -> None:
    book = new_book()
    place(book, order(1, 0, True, 100, 5))
    place(book, order(2, 0, True, 100, 6))
    cancelled = book.cancel((1, 0))
    assert cancelled is not None and cancelled.remaining == 5 and not cancelled.live
    assert book.cancel((1, 0)) is None
    assert book.cancel((7, 7)) is None
    assert book.depth() == ([(100, 6)], [])
    assert book.cancel((2, 0)) is not None
    assert book.best_bid() is None and len(book) == 0
    book.check_invariants()


def test_cancel_many_behind_a_resting_order_compacts_level() -> None:
    book = new_book()
    place(book, order(1, 0, True, 100, 5))
    for nonce in range(1, 200):
        place(book, order(2, nonce, True, 100, 1))
        assert book.cancel((2, nonce)) is not None
    level = book._bids[100]
    assert len(level.orders) <= 2 * 1 + 17
    book.check_invariants()
    assert fills(place(book, order(3, 0, False, 100, 5))) == [((1, 0), 100, 5)]


def test_get_returns_snapshot_not_live_object() -> None:
    book = new_book()
    place(book, order(1, 0, True, 100, 5))
    snapshot = book.get((1, 0))
    assert snapshot is not None
    snapshot.remaining = 1
    assert book.get((1, 0)).remaining == 5  # type: ignore[union-attr]
    place(book, order(2, 0, False, 100, 2))
    assert snapshot.remaining == 1 and book.get((1, 0)).remaining == 3  # type: ignore[union-attr]


def test_orders_of_in_arrival_order() -> None:
    book = new_book()
    place(book, order(1, 0, True, 100, 5))
    place(book, order(2, 0, True, 101, 5))
    place(book, order(1, 1, False, 110, 5))
    place(book, order(1, 2, True, 99, 5))
    assert [o.key for o in book.orders_of(1)] == [(1, 0), (1, 1), (1, 2)]
    assert book.orders_of(3) == []
    assert (1, 1) in book and (3, 0) not in book


def test_depth_aggregates_levels_best_first() -> None:
    book = new_book()
    for nonce, (is_buy, price, size) in enumerate(
        [
            (True, 99, 1),
            (True, 99, 2),
            (True, 98, 4),
            (True, 97, 8),
            (False, 101, 3),
            (False, 103, 5),
            (False, 101, 1),
            (False, 102, 7),
        ]
    ):
        place(book, order(1, nonce, is_buy, price, size))
    assert book.depth() == ([(99, 3), (98, 4), (97, 8)], [(101, 4), (102, 7), (103, 5)])
    assert book.depth(2) == ([(99, 3), (98, 4)], [(101, 4), (102, 7)])
    assert book.depth(0) == ([], [])
    assert (book.best_bid(), book.best_ask(), book.spread(), book.mid()) == (99, 101, 2, 100)


def test_spread_and_mid_none_on_one_sided_book() -> None:
    book = new_book()
    assert (book.best_bid(), book.best_ask(), book.spread(), book.mid()) == (None,) * 4
    place(book, order(1, 0, True, 99, 1))
    assert (book.spread(), book.mid()) == (None, None)


def test_impact_price_average_rounded_against_taker() -> None:
    book = new_book()
    place(book, order(1, 0, False, 100, 2))
    place(book, order(1, 1, False, 101, 2))
    place(book, order(1, 2, True, 90, 3))
    place(book, order(1, 3, True, 89, 3))
    assert book.impact_price(True, 2) == 100
    assert book.impact_price(True, 3) == 101  # (200 + 101) / 3 = 100.33 -> up
    assert book.impact_price(True, 4) == 101  # 100.5 -> up
    assert book.impact_price(True, 5) is None
    assert book.impact_price(False, 4) == 89  # (270 + 89) / 4 = 89.75 -> down
    assert book.impact_price(False, 6) == 89
    with pytest.raises(ValueError, match="positive"):
        book.impact_price(False, 0)


# --------------------------------------------------------------------------- value types


def test_fast_constructors_build_equal_frozen_objects() -> None:
    m = new_match((1, 0), 1, (2, 0), 2, True, 100, 5)
    assert m == Match((1, 0), 1, (2, 0), 2, True, 100, 5)
    assert hash(m) == hash(Match((1, 0), 1, (2, 0), 2, True, 100, 5))
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.size = 6  # type: ignore[misc]
    r = new_place_result((m,), False, 0, (), 5)
    assert r == PlaceResult((m,), False, 0, (), 5) and r.filled == 5
    assert fast_constructor(IncomingOrder)((1, 0), 1, True, 5, 5, GTC, False, False, 0) == order(
        1, 0, True, 5, 5
    )
