"""The engine: signed orders through checks, matching and the ledger into the batch."""

import pytest
from exchange_fixtures import DOMAIN, make_desk

from isoperp.batch.builder import BatchBuilder
from isoperp.exchange.engine import Engine
from isoperp.ledger.transitions import CancelOrder, Fill, OrderDone, PlaceOrder
from isoperp.matching import OrderRejected
from isoperp.protocol.constants import FLAG_REDUCE_ONLY, TIF_IOC
from isoperp.protocol.signing import sign_request


def records(desk, kind):
    return [t for t in desk.builder._transitions if isinstance(t, kind)]


def test_resting_order_touches_nothing_on_chain_until_it_fills(desk):
    root = desk.ledger.state_root
    out = desk.submit(0, False, 600_000, 1_000)
    assert out.rested and out.remaining == 1_000 and not out.fills
    assert desk.ledger.state_root == root and len(desk.builder) == 0


def test_crossing_order_registers_both_orders_then_fills(desk):
    desk.submit(0, False, 600_000, 1_000)
    out = desk.submit(1, True, 600_500, 400, tif=TIF_IOC)
    assert [f.size for f in out.fills] == [400] and out.fills[0].price == 600_000
    assert [type(t).__name__ for t in desk.builder._transitions] == [
        "PlaceOrder",
        "PlaceOrder",
        "Fill",
    ]
    assert desk.ledger.position(0, 0).size == -400
    assert desk.ledger.position(1, 0).size == 400
    assert desk.ledger.order(0, 1).filled == 400  # maker's slot holds its fill state
    desk.ledger.check_invariants()


def test_ioc_remainder_is_closed_on_chain(desk):
    desk.submit(0, False, 600_000, 100)
    out = desk.submit(1, True, 600_000, 300, tif=TIF_IOC)
    assert out.remaining == 200 and not out.rested
    (done,) = records(desk, OrderDone)
    assert done.account_id == 1
    leaf = desk.ledger.order(1, 1)
    assert leaf.size == leaf.filled == 100  # closed: can never fill again


def test_bad_signature_rejected_with_state_unchanged(desk):
    order = desk.order(0, False, 600_000, 100)
    forged = sign_request(desk.keys[1], DOMAIN, order)  # account 1 signs account 0's order
    root = desk.ledger.state_root
    with pytest.raises(OrderRejected) as info:
        desk.engine.submit(forged)
    assert info.value.reason == "bad_signature"
    assert desk.ledger.state_root == root and len(desk.engine.books[0]) == 0


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        ({"price": 600_000, "size": 0}, "bad_size"),
        ({"price": 0, "size": 10}, "off_tick"),
        ({"price": 600_000, "size": 10, "expiry": 5}, "expired"),
    ],
)
def test_book_rejections_change_nothing(desk, kwargs, reason):
    root = desk.ledger.state_root
    with pytest.raises(OrderRejected) as info:
        desk.submit(0, True, kwargs["price"], kwargs["size"], expiry=kwargs.get("expiry", 0))
    assert info.value.reason == reason
    assert desk.ledger.state_root == root and len(desk.builder) == 0


def test_unknown_market_rejected(desk):
    order = PlaceOrder(0, 9, True, 600_000, 10, 0, 0, 1, 0, b"")
    with pytest.raises(OrderRejected) as info:
        desk.engine.submit(sign_request(desk.keys[0], DOMAIN, order))
    assert info.value.reason == "unknown_market"


def test_order_beyond_margin_rejected_before_the_book(desk):
    # 10,000 USDC margin at 5% IMF carries at most ~200,000 USDC notional: 4 BTC = 400,000 lots.
    with pytest.raises(OrderRejected) as info:
        desk.submit(0, True, 600_000, 400_000)
    assert info.value.reason == "insufficient_margin"
    assert len(desk.engine.books[0]) == 0


def test_order_without_position_rejected():
    desk = make_desk(margin=0)
    with pytest.raises(OrderRejected) as info:
        desk.submit(0, True, 600_000, 10)
    assert info.value.reason == "no_position"


def test_replayed_order_rejected(desk):
    order = desk.order(0, False, 600_000, 100)
    desk.engine.submit(order)
    desk.submit(1, True, 600_000, 100, tif=TIF_IOC)  # fills it: the nonce is now on-chain
    with pytest.raises(OrderRejected) as info:
        desk.engine.submit(order)
    assert info.value.reason == "replay"


def test_slot_in_use_rejected(desk):
    desk.submit(0, False, 600_000, 100, nonce=1)
    with pytest.raises(OrderRejected) as info:
        desk.submit(0, False, 600_100, 100, nonce=65)  # 65 % 64 == 1: would kill order 1
    assert info.value.reason == "slot_in_use"


def test_self_trade_removes_own_maker(desk):
    desk.submit(0, False, 600_000, 100)
    out = desk.submit(0, True, 600_000, 100, tif=TIF_IOC)
    assert out.removed == (((0, 1), "self_trade"),) and not out.fills


def test_cancel_takes_order_off_book_and_burns_nonce(desk):
    desk.submit(0, False, 600_000, 100, nonce=3)
    cancel = sign_request(desk.keys[0], DOMAIN, CancelOrder(0, 3, b""))
    assert desk.engine.cancel(cancel) is True
    assert len(desk.engine.books[0]) == 0
    leaf = desk.ledger.order(0, 3)
    assert leaf.nonce == 3 and leaf.size == leaf.filled  # tombstone: can never be registered


def test_reduce_only_never_flips(desk):
    desk.submit(0, False, 600_000, 100)
    desk.submit(1, True, 600_000, 100, tif=TIF_IOC)  # account 1 is long 100
    desk.submit(2, True, 600_000, 1_000)  # a bid for account 1 to sell into
    out = desk.submit(1, False, 600_000, 500, tif=TIF_IOC, flags=FLAG_REDUCE_ONLY)
    assert sum(f.size for f in out.fills) == 100  # clipped to the position
    assert desk.ledger.position(1, 0) is None  # flat: margin returned, leaf deleted


def test_restore_puts_resting_order_back_with_what_is_left(desk):
    order = desk.order(0, False, 600_000, 1_000)
    desk.engine.submit(order)
    desk.submit(1, True, 600_000, 300, tif=TIF_IOC)
    engine = Engine(
        desk.ledger, BatchBuilder(desk.ledger, desk.builder.previous), DOMAIN, now=desk.engine.now
    )
    assert engine.restore(order) is True
    assert engine.books[0].depth()[1] == [(600_000, 700)]
    assert sum(1 for t in desk.builder._transitions if isinstance(t, Fill)) == 1
