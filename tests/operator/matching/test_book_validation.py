"""Order book: every rejection reason, in order, and a rejected order changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from isoperp.errors import ConfigError, TransitionRejected
from isoperp.matching import IncomingOrder, OrderBook, OrderRejected, TimeInForce

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


def fingerprint(book: OrderBook) -> object:
    """Everything the book holds, including the lazy structures, for before/after comparison."""
    sides = []
    for levels, keys in ((book._bids, book._bid_keys), (book._asks, book._ask_keys)):
        sides.append(
            (
                list(keys),
                [
                    (
                        k,
                        levels[k].total,
                        levels[k].dead,
                        [(o.key, o.remaining, o.live) for o in levels[k].orders],
                    )
                    for k in keys
                ],
            )
        )
    return (
        sides,
        {k: (o.remaining, o.live) for k, o in book._orders.items()},
        sorted(book._seen),
        sorted(book._expiries),
        book._seq,
    )


@pytest.fixture
def book() -> OrderBook:
    """Tick 5, step 2, min 4; asks 105 (acct 1) and 110 (acct 2), bids 95 (acct 3), one cancel
    (so a level holds a dead entry) and an expiring order."""
    b = OrderBook(7, price_tick=5, size_step=2, min_size=4)
    b.place(order(1, 0, False, 105, 10), now=NOW)
    b.place(order(2, 0, False, 110, 10), now=NOW)
    b.place(order(3, 0, True, 95, 10, expiry=NOW + 50), now=NOW)
    b.place(order(3, 1, True, 95, 6), now=NOW)
    b.place(order(3, 2, True, 95, 6), now=NOW)
    assert b.cancel((3, 1)) is not None
    return b


@pytest.mark.parametrize(
    ("incoming", "reason", "position"),
    [
        (order(4, 0, True, 0, 10), "off_tick", 0),
        (order(4, 0, True, -5, 10), "off_tick", 0),
        (order(4, 0, True, 101, 10), "off_tick", 0),
        (order(4, 0, True, 100, 0), "bad_size", 0),
        (order(4, 0, True, 100, -4), "bad_size", 0),
        (order(4, 0, True, 100, 5), "bad_size", 0),
        (order(4, 0, True, 100, 2), "below_min_size", 0),
        (order(4, 0, True, 100, 4, expiry=NOW), "expired", 0),
        (order(4, 0, True, 100, 4, expiry=NOW - 1), "expired", 0),
        (order(1, 0, True, 100, 4), "duplicate_order", 0),
        (order(3, 1, True, 100, 4), "duplicate_order", 0),  # cancelled keys stay used
        (IncomingOrder((4, 0), 5, True, 100, 4), "bad_key", 0),
        (order(4, 0, True, 100, 4, reduce_only=True), "reduce_only_would_increase", 0),
        (order(4, 0, True, 100, 4, reduce_only=True), "reduce_only_would_increase", 6),
        (order(4, 0, False, 100, 4, reduce_only=True), "reduce_only_would_increase", -6),
        (order(4, 0, True, 105, 4, post_only=True), "post_only_would_cross", 0),
        (order(4, 0, False, 95, 4, post_only=True), "post_only_would_cross", 0),
        (order(4, 0, True, 110, 22, FOK), "fok_unfillable", 0),
        (order(4, 0, True, 100, 4, FOK), "fok_unfillable", 0),  # does not cross at all
        # Own ask at 105 would be removed by STP: only 10 lots remain within 110.
        (order(1, 1, True, 110, 12, FOK), "fok_unfillable", 0),
        (order(4, 0, False, 95, 18, FOK), "fok_unfillable", 0),
    ],
)
def test_place_rejected_changes_nothing(
    book: OrderBook, incoming: IncomingOrder, reason: str, position: int
) -> None:
    before = fingerprint(book)
    with pytest.raises(OrderRejected) as info:
        book.place(incoming, now=NOW, position=position)
    assert info.value.reason == reason
    assert info.value.code == reason
    assert isinstance(info.value, TransitionRejected)
    assert fingerprint(book) == before
    book.check_invariants()


def test_place_reasons_checked_in_documented_order(book: OrderBook) -> None:
    """Off-tick beats everything; a duplicate expired key reports expiry first."""
    with pytest.raises(OrderRejected, match="tick") as info:
        book.place(order(1, 0, True, 101, 1, expiry=1), now=NOW)
    assert info.value.reason == "off_tick"
    with pytest.raises(OrderRejected) as info:
        book.place(order(1, 0, True, 100, 1), now=NOW)
    assert info.value.reason == "bad_size"
    with pytest.raises(OrderRejected) as info:
        book.place(order(1, 0, True, 100, 4, expiry=1), now=NOW)
    assert info.value.reason == "expired"


def test_fok_counting_expired_maker_is_rejected(book: OrderBook) -> None:
    """The bid at 95 expiring at NOW+50 does not count for a FOK sell placed after it expired."""
    before = fingerprint(book)
    with pytest.raises(OrderRejected) as info:
        book.place(order(4, 0, False, 95, 8, FOK), now=NOW + 50)
    assert info.value.reason == "fok_unfillable"
    assert fingerprint(book) == before
    result = book.place(order(4, 0, False, 95, 6, FOK), now=NOW + 50)
    assert [m.maker for m in result.fills] == [(3, 2)]
    assert result.removed == (((3, 0), "expired"),)


def test_init_bad_market_parameters_rejected() -> None:
    for kwargs in (
        {"price_tick": 0, "size_step": 1, "min_size": 1},
        {"price_tick": 1, "size_step": 0, "min_size": 1},
        {"price_tick": 1, "size_step": 1, "min_size": 0},
    ):
        with pytest.raises(ConfigError):
            OrderBook(0, **kwargs)
