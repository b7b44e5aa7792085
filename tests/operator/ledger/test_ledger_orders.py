"""Order records: ORDER (register in slot nonce % 64), CANCEL (close or burn a nonce), ORDER_DONE
(close an IOC/FOK remainder); owner signatures (wrong signer, malleable, replays) and the
insurance account's unsigned, reduce-only orders."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from isoperp.ledger.ledger import AppliedOrder, AppliedOrderClosed
from isoperp.ledger.markets import BTC_USD
from isoperp.ledger.model import Order
from isoperp.ledger.transitions import Fill, OrderDone, PlaceOrder, SignedRequest, Transition
from isoperp.protocol.batch import decode_batch, encode_batch, encode_record
from isoperp.protocol.constants import (
    FLAG_POST_ONLY,
    FLAG_REDUCE_ONLY,
    INSURANCE_ACCOUNT,
    RECORD_ORDER,
    TIF_FOK,
    TIF_GTC,
    TIF_IOC,
)
from isoperp.protocol.leaves import account_index, encode_order, market_index, order_index
from isoperp.protocol.signing import NO_SIGNATURE, SECP256K1_N, Domain, sign_request


def malleate(signature: bytes) -> bytes:
    """The other valid signature of the same digest: (r, n - s, v ^ 1), high s (EIP-2)."""
    s = int.from_bytes(signature[32:64], "big")
    return signature[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - signature[64]])


# -- ORDER -----------------------------------------------------------------------------------------


def test_order_registers_in_slot_nonce_mod_64(h, new_user) -> None:
    u = h.funded(1_000_000)
    r = h.place(u, True, 600_000, 25, nonce=130, tif=TIF_IOC, flags=FLAG_REDUCE_ONLY, expiry=99)
    order = Order(u.account_id, 2, 130, 0, True, 600_000, 25, 0, TIF_IOC, FLAG_REDUCE_ONLY, 99)
    assert r == AppliedOrder(
        order, None, (account_index(u.account_id), market_index(0), order_index(u.account_id, 2))
    )
    assert h.ledger.order(u.account_id, 2) == order
    assert h.ledger.leaf_bytes(order_index(u.account_id, 2)) == encode_order(order)
    h.ledger.check_invariants(h.net_deposits)


def test_order_larger_nonce_replaces_older_order_in_slot(h) -> None:
    u = h.funded(1_000_000)
    old = h.place(u, True, 600_000, 25, nonce=3).order
    r = h.place(u, False, 600_100, 10, nonce=67)  # 67 % 64 == 3
    assert r.replaced == old and r.order.nonce == 67 and r.order.slot == 3
    assert h.ledger.order(u.account_id, 3) == r.order


def test_order_same_nonce_rejects_order_exists(h) -> None:
    u = h.funded(1_000_000)
    t = h.order_tx(u, True, 600_000, 25, nonce=5)
    h.ledger.apply(t)
    h.reject(t, "order_exists")  # a replay
    h.reject(h.order_tx(u, False, 1, 1, nonce=5), "order_exists")


def test_order_smaller_nonce_rejects_stale_nonce(h) -> None:
    u = h.funded(1_000_000)
    h.place(u, True, 600_000, 25, nonce=64 + 5)
    h.reject(h.order_tx(u, True, 600_000, 25, nonce=5), "stale_nonce")


def test_order_wrong_signer_rejects(h, new_user) -> None:
    u = h.funded(1_000_000)
    h.reject(h.order_tx(u, True, 600_000, 25, key=new_user().key), "bad_signature")


def test_order_high_s_malleated_signature_rejects(h) -> None:
    u = h.funded(1_000_000)
    t = h.order_tx(u, True, 600_000, 25, nonce=9)
    h.reject(dataclasses.replace(t, signature=malleate(t.signature)), "bad_signature")
    h.ledger.apply(t)


@pytest.mark.parametrize(
    "change",
    [
        {"price": 600_001},
        {"size": 26},
        {"is_buy": False},
        {"time_in_force": TIF_IOC},
        {"flags": FLAG_REDUCE_ONLY},
        {"expiry": 1},
        {"market_id": 1},
        {"nonce": 1},
    ],
)
def test_order_tampered_field_rejects_bad_signature(h, change) -> None:
    u = h.funded(1_000_000)
    t = h.order_tx(u, True, 600_000, 25, nonce=0)
    h.reject(dataclasses.replace(t, **change), "bad_signature")


def test_order_other_domain_rejects_bad_signature(h) -> None:
    u = h.funded(1_000_000)
    t = h.order_tx(u, True, 600_000, 25)
    other = Domain(1, h.domain.verifying_contract)
    h.reject(sign_request(u.key, other, t), "bad_signature")


def test_order_unknown_account_and_market_reject(h) -> None:
    u = h.funded(1_000_000)
    h.reject(dataclasses.replace(h.order_tx(u, True, 600_000, 1), account_id=7), "unknown_account")
    h.reject(h.order_tx(u, True, 600_000, 1, market_id=2), "unknown_market")


@pytest.mark.parametrize(
    ("tif", "flags"),
    [(3, 0), (TIF_GTC, 4), (TIF_GTC, 0x80), (TIF_IOC, FLAG_POST_ONLY), (TIF_FOK, FLAG_POST_ONLY)],
)
def test_order_bad_time_in_force_or_flags_rejects_bad_order(h, tif: int, flags: int) -> None:
    u = h.funded(1_000_000)
    h.reject(h.order_tx(u, True, 600_000, 1, tif=tif, flags=flags), "bad_order")


@pytest.fixture
def gridded(harness_factory):
    """Price tick 10, size step 5, min size 10."""
    h = harness_factory([dataclasses.replace(BTC_USD, price_tick=10, size_step=5, min_size=10)])
    return h, h.funded(1_000_000)


@pytest.mark.parametrize("price", [0, 5, 600_005])
def test_order_off_tick_rejects(gridded, price: int) -> None:
    h, u = gridded
    h.reject(h.order_tx(u, True, price, 10), "off_tick")


@pytest.mark.parametrize("size", [0, 5, 12])
def test_order_bad_size_rejects(gridded, size: int) -> None:
    h, u = gridded
    h.reject(h.order_tx(u, True, 600_010, size), "bad_size")


def test_order_on_grid_succeeds(gridded) -> None:
    h, u = gridded
    assert h.place(u, True, 600_010, 15).order.size == 15


@pytest.mark.parametrize(
    "change",
    [
        {"is_buy": 1},
        {"price": -1},
        {"size": 1 << 64},
        {"time_in_force": 256},
        {"flags": -1},
        {"nonce": 1 << 64},
        {"expiry": None},
        {"account_id": 1 << 32},
        {"market_id": 1 << 16},
    ],
)
def test_order_malformed_fields_reject(h, change) -> None:
    u = h.funded(1_000_000)
    h.reject(dataclasses.replace(h.order_tx(u, True, 600_000, 1), **change), "malformed")


def test_order_insurance_unsigned_reduce_only_succeeds(h, insurance) -> None:
    t = h.order_tx(insurance, False, 600_000, 10, flags=FLAG_REDUCE_ONLY)
    assert t.signature == NO_SIGNATURE
    r = h.ledger.apply(t)
    assert r.order.account_id == INSURANCE_ACCOUNT and r.order.reduce_only


def test_order_insurance_not_reduce_only_rejects(h, insurance) -> None:
    h.reject(h.order_tx(insurance, False, 600_000, 10), "insurance_account")


def test_order_insurance_with_a_signature_rejects(h, insurance, new_user) -> None:
    t = h.order_tx(insurance, False, 600_000, 10, flags=FLAG_REDUCE_ONLY, key=new_user().key)
    h.reject(t, "bad_signature")


def test_order_user_without_signature_rejects(h) -> None:
    u = h.funded(1_000_000)
    t = h.order_tx(u, True, 600_000, 1)
    h.reject(dataclasses.replace(t, signature=NO_SIGNATURE), "bad_signature")


# -- CANCEL ----------------------------------------------------------------------------------------


def test_cancel_registered_order_closes_it(h) -> None:
    m = h.funded(5_000_000_000, 1_000_000_000)
    t = h.funded(5_000_000_000, 1_000_000_000)
    h.place(m, False, 600_000, 100)  # nonce 0
    h.place(t, True, 600_000, 100)
    h.ledger.apply(Fill(0, m.account_id, 0, t.account_id, 0, 30, 600_000, 7))
    r = h.ledger.apply(h.cancel_tx(m, 0))
    closed = Order(m.account_id, 0, 0, 0, False, 600_000, 30, 30, 0, 0, 0)
    assert r == AppliedOrderClosed(
        closed, False, (account_index(m.account_id), order_index(m.account_id, 0))
    )
    assert h.ledger.order(m.account_id, 0) == closed
    h.reject(Fill(0, m.account_id, 0, t.account_id, 0, 1, 600_000, 7), "order_closed")
    h.reject(h.cancel_tx(m, 0), "order_closed")  # cancelling twice


def test_cancel_unregistered_nonce_writes_tombstone(h) -> None:
    u = h.funded(1_000_000)
    r = h.ledger.apply(h.cancel_tx(u, 70))
    assert r.tombstone and r.order == Order.tombstone(u.account_id, 70)
    assert r.order == Order(u.account_id, 6, 70, 0, False, 0, 0, 0, 0, 0, 0)
    # the cancelled order can never be registered afterwards
    h.reject(h.order_tx(u, True, 600_000, 1, nonce=70), "order_exists")
    h.reject(h.cancel_tx(u, 70), "order_closed")
    h.reject(h.order_tx(u, True, 600_000, 1, nonce=6), "stale_nonce")


def test_cancel_over_smaller_nonce_writes_tombstone(h) -> None:
    u = h.funded(1_000_000)
    old = h.place(u, True, 600_000, 1, nonce=6).order
    r = h.ledger.apply(h.cancel_tx(u, 70))
    assert r.tombstone and h.ledger.order(u.account_id, 6).nonce == 70
    assert old.live  # the replaced order is gone from the state, it can never fill


def test_cancel_smaller_nonce_than_slot_rejects_stale_nonce(h) -> None:
    u = h.funded(1_000_000)
    h.place(u, True, 600_000, 1, nonce=70)
    h.reject(h.cancel_tx(u, 6), "stale_nonce")


def test_cancel_wrong_signer_and_tampered_nonce_reject(h, new_user) -> None:
    u = h.funded(1_000_000)
    h.place(u, True, 600_000, 1, nonce=3)
    h.reject(h.cancel_tx(u, 3, key=new_user().key), "bad_signature")
    h.reject(dataclasses.replace(h.cancel_tx(u, 3), nonce=4), "bad_signature")
    h.reject(dataclasses.replace(h.cancel_tx(u, 3), account_id=5), "unknown_account")


def test_cancel_malleated_signature_rejects(h) -> None:
    u = h.funded(1_000_000)
    t = h.cancel_tx(u, 3)
    h.reject(dataclasses.replace(t, signature=malleate(t.signature)), "bad_signature")


def test_cancel_insurance_unsigned_succeeds(h, insurance) -> None:
    h.place(insurance, False, 600_000, 10, flags=FLAG_REDUCE_ONLY, nonce=1)
    assert not h.ledger.apply(h.cancel_tx(insurance, 1)).order.live


@pytest.mark.parametrize("change", [{"nonce": -1}, {"account_id": None}, {"signature": "00"}])
def test_cancel_malformed_fields_reject(h, change) -> None:
    u = h.funded(1_000_000)
    h.reject(dataclasses.replace(h.cancel_tx(u, 1), **change), "malformed")


# -- ORDER_DONE ------------------------------------------------------------------------------------


@pytest.mark.parametrize("tif", [TIF_IOC, TIF_FOK])
def test_order_done_closes_ioc_remainder(h, tif: int) -> None:
    m = h.funded(5_000_000_000, 1_000_000_000)
    t = h.funded(5_000_000_000, 1_000_000_000)
    h.place(m, False, 600_000, 40)
    h.place(t, True, 600_000, 100, tif=tif)
    h.ledger.apply(Fill(0, m.account_id, 0, t.account_id, 0, 40, 600_000, 7))
    r = h.ledger.apply(OrderDone(t.account_id, 0))
    assert r.order.size == r.order.filled == 40 and not r.tombstone
    assert r.touched == (order_index(t.account_id, 0),)
    h.reject(OrderDone(t.account_id, 0), "order_closed")


def test_order_done_gtc_rejects_not_ioc(h) -> None:
    u = h.funded(1_000_000)
    h.place(u, True, 600_000, 1)
    h.reject(OrderDone(u.account_id, 0), "not_ioc")


def test_order_done_empty_slot_rejects_no_order(h) -> None:
    u = h.funded(1_000_000)
    h.reject(OrderDone(u.account_id, 0), "no_order")


@pytest.mark.parametrize("t", [OrderDone(0, 64), OrderDone(-1, 0), OrderDone(0, True)])
def test_order_done_malformed_fields_reject(h, t: OrderDone) -> None:
    h.funded(1_000_000)
    h.reject(t, "malformed")


def test_place_order_is_a_transition_type(h) -> None:
    """ORDER is a member of the Transition union, a signed request, has a planner in the ledger
    (``apply`` and ``validate`` register the order through the generic dispatch) and a record in
    the batch codec (type 0x05, decoded back to the same PlaceOrder)."""
    assert PlaceOrder in typing.get_args(Transition)
    assert PlaceOrder in typing.get_args(SignedRequest)
    u = h.funded(1_000_000)
    t = h.order_tx(u, True, 600_000, 5, nonce=7)
    assert encode_record(t)[0] == RECORD_ORDER
    (decoded,) = decode_batch(encode_batch([t], [b"\x11" * 32]))
    assert decoded == t
    preview = h.ledger.validate(decoded)
    applied = h.ledger.apply(decoded)
    assert isinstance(applied, AppliedOrder) and applied == preview
    assert h.ledger.order(u.account_id, 7) == applied.order
