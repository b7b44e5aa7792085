"""PRICE (oracle-signed mark prices) and FUNDING (the dYdX index, settlement on touch, dust)."""

from __future__ import annotations

import dataclasses

import pytest

from isoperp.ledger import arith, risk
from isoperp.ledger.ledger import AppliedFunding, AppliedPrice
from isoperp.ledger.markets import BTC_USD
from isoperp.ledger.model import Position
from isoperp.ledger.transitions import Funding, PriceUpdate
from isoperp.protocol.constants import MAX_PRICE_AGE
from isoperp.protocol.leaves import encode_market, market_index
from isoperp.protocol.signing import SECP256K1_N, Domain, sign_request

# -- PRICE ---------------------------------------------------------------------------------------


def test_price_sets_mark_and_time(h) -> None:
    r = h.set_price(612_345, 1_700_000_000)
    assert r == AppliedPrice(0, 612_345, 1_700_000_000, (market_index(0),))
    market = h.ledger.market(0)
    assert (market.mark_price, market.mark_time) == (612_345, 1_700_000_000)
    assert h.ledger.leaf_bytes(market_index(0)) == encode_market(market)


def test_price_replay_or_older_rejects_price_not_newer(h) -> None:
    t = h.price_tx(612_345, 1_000)
    h.ledger.apply(t)
    h.reject(t, "price_not_newer")
    h.reject(h.price_tx(600_000, 999), "price_not_newer")
    h.set_price(600_000, 1_001)


def test_price_signed_by_someone_else_rejects(h, new_user) -> None:
    h.reject(h.price_tx(612_345, 1_000, key=new_user().key), "bad_signature")


def test_price_tampered_fields_reject(h) -> None:
    t = h.price_tx(612_345, 1_000)
    for change in ({"price": 612_346}, {"timestamp": 1_001}, {"market_id": 1}):
        h.reject(dataclasses.replace(t, **change), "bad_signature")


def test_price_malleated_signature_rejects(h) -> None:
    t = h.price_tx(612_345, 1_000)
    s = int.from_bytes(t.signature[32:64], "big")
    high = t.signature[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - t.signature[64]])
    h.reject(dataclasses.replace(t, signature=high), "bad_signature")


def test_price_other_domain_rejects(h, oracle_key) -> None:
    other = Domain(1, h.domain.verifying_contract)
    h.reject(sign_request(oracle_key, other, PriceUpdate(0, 612_345, 1_000, b"")), "bad_signature")


def test_price_zero_rejects_bad_price(h) -> None:
    h.reject(h.price_tx(0, 1_000), "bad_price")


def test_price_unknown_market_rejects(h) -> None:
    h.reject(h.price_tx(1, 1_000, market_id=5), "unknown_market")


@pytest.mark.parametrize("change", [{"price": -1}, {"timestamp": 1 << 64}, {"signature": None}])
def test_price_malformed_fields_reject(h, change) -> None:
    h.reject(dataclasses.replace(h.price_tx(1, 1_000), **change), "malformed")


# -- FUNDING: the index step (dYdX funding_test.go) ----------------------------------------------


@pytest.mark.parametrize(
    ("rate", "dt", "price", "exp", "expected"),
    [
        # base_res -12, price exponent 0: NEXP = -12 + 0 + 6 = -6
        (1_001_999, 28_800, 1_000, -6, 1_001),
        (-1_001_999, 28_800, 1_000, -6, -1_001),
        # base_res -4, price exponent 2: NEXP = -4 + 2 + 6 = 4
        (-1_001_999, 14_400, 1_000, 4, -5_009_995_000_000),
        # trunc toward zero, not floor: -1 * 1 * 1 / 28,800 -> 0
        (-1, 1, 1, 0, 0),
    ],
)
def test_funding_index_delta_matches_dydx(rate, dt, price, exp, expected) -> None:
    assert arith.funding_index_delta(rate, dt, price, exp) == expected


def _funding_market(exp: int, price: int):
    # IMF 50%, MMF 30%: the rate cap is 600% x 20% = 1,200,000 ppm
    return dataclasses.replace(
        BTC_USD, imf_ppm=500_000, mmf_ppm=300_000, notional_exp=exp, mark_price=price
    )


@pytest.mark.parametrize(
    ("rate", "dt", "exp", "expected"),
    [
        (1_001_999, 28_800, -6, 1_001),
        (-1_001_999, 28_800, -6, -1_001),
        (-1_001_999, 14_400, 4, -5_009_995_000_000),
    ],
)
def test_funding_record_moves_index_like_dydx(harness_factory, rate, dt, exp, expected) -> None:
    h = harness_factory([_funding_market(exp, 1_000)])
    h.set_price(1_000, 100)
    first = h.ledger.apply(Funding(0, rate, 100))
    assert first == AppliedFunding(0, rate, 0, 0, 0, (market_index(0),))  # only starts the clock
    h.set_price(1_000, 100 + dt)
    r = h.ledger.apply(Funding(0, rate, 100 + dt))
    assert (r.dt, r.index_delta, r.funding_index) == (dt, expected, expected)
    market = h.ledger.market(0)
    assert (market.funding_index, market.funding_time) == (expected, 100 + dt)


def test_funding_rate_cap_boundary(h) -> None:
    # devnet: 600% x (5% - 3%) = 120,000 ppm per 8 h
    h.set_price(600_000, 10)
    h.reject(Funding(0, 120_001, 10), "funding_rate_cap")
    h.reject(Funding(0, -120_001, 10), "funding_rate_cap")
    h.ledger.apply(Funding(0, -120_000, 10))
    h.ledger.apply(Funding(0, 120_000, 11))


def test_funding_not_newer_rejects(h) -> None:
    h.set_price(600_000, 10)
    h.ledger.apply(Funding(0, 0, 10))
    h.reject(Funding(0, 0, 10), "funding_not_newer")
    h.reject(Funding(0, 0, 9), "funding_not_newer")
    h.reject(Funding(0, 0, 0), "funding_not_newer")


def test_funding_stale_mark_rejects(h) -> None:
    h.set_price(600_000, 1_000)
    h.reject(Funding(0, 100, 1_000 + MAX_PRICE_AGE + 1), "stale_price")
    h.reject(Funding(0, 100, 999), "stale_price")  # the mark is newer than the record
    h.ledger.apply(Funding(0, 100, 1_000 + MAX_PRICE_AGE))


def test_funding_genesis_mark_is_stale_after_a_minute(h) -> None:
    h.reject(Funding(0, 100, MAX_PRICE_AGE + 1), "stale_price")
    h.ledger.apply(Funding(0, 100, MAX_PRICE_AGE))


def test_funding_index_overflow_rejects(harness_factory) -> None:
    market = dataclasses.replace(BTC_USD, imf_ppm=1_000_000, mmf_ppm=0, mark_price=(1 << 64) - 1)
    h = harness_factory([dataclasses.replace(market, mark_time=1, funding_time=1)])
    h.set_price((1 << 64) - 1, 1 << 63)
    h.reject(Funding(0, 6_000_000, 1 << 63), "overflow")


@pytest.mark.parametrize(
    "t", [Funding(0, 1 << 31, 5), Funding(0, 0, -1), Funding(1 << 16, 0, 5), Funding(0, 0.5, 5)]
)
def test_funding_malformed_fields_reject(h, t) -> None:
    h.reject(t, "malformed")


def test_funding_unknown_market_rejects(h) -> None:
    h.reject(Funding(9, 0, 5), "unknown_market")


# -- settlement on touch -------------------------------------------------------------------------


def test_pending_funding_floors_against_both_sides() -> None:
    market = dataclasses.replace(BTC_USD, funding_index=1)
    long = Position(0, 0, 1, 0, 600_000, 0)
    short = Position(1, 0, -1, 0, -600_000, 0)
    # index +1 (1e-6 micro-USDC per lot): the long pays floor(-1e-6) = -1, the short gets 0
    assert risk.pending_funding(long, market) == -1
    assert risk.pending_funding(short, market) == 0
    settled, paid = risk.settle_funding(long, market)
    assert paid == -1 and settled == Position(0, 0, 1, -1, 600_000, 1)
    flat = Position(2, 0, 0, 5, 0, 0)
    assert risk.pending_funding(flat, market) == 0
    assert risk.settle_funding(flat, market) == (Position(2, 0, 0, 5, 0, 1), 0)


def test_funding_settles_on_margin_transfer_and_dust_stays_bounded(h) -> None:
    m = h.funded(50_000_000_000, 10_000_000_000)
    t = h.funded(50_000_000_000, 10_000_000_000)
    h.fill(m, t, 3, 600_000)  # T long 3, M short 3
    h.set_price(600_000, 100)
    h.ledger.apply(Funding(0, 0, 100))
    h.set_price(600_001, 100 + 3_600)
    h.ledger.apply(Funding(0, 7, 100 + 3_600))
    # index step trunc(7 * 3,600 * 600,001 / 28,800) = trunc(525,000.875) = 525,000
    assert h.ledger.market(0).funding_index == 525_000
    # pending: T floor(-525,000 * 3 / 1e6) = floor(-1.575) = -2; M floor(1.575) = 1
    assert risk.pending_funding(h.ledger.position(t.account_id, 0), h.ledger.market(0)) == -2
    assert risk.pending_funding(h.ledger.position(m.account_id, 0), h.ledger.market(0)) == 1
    assert h.ledger.funding_dust(h.net_deposits) == 1  # conservation: 1 micro-USDC of dust
    r = h.margin(t, 0, 1)
    assert r.funding == -2 and r.position.funding_index == 525_000
    assert r.position.quote == 10_000_000_000 - 1_800_000 - 900 - 2 + 1
    h.ledger.check_invariants(h.net_deposits, max_funding_dust=2)
