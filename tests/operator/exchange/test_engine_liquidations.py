"""Liquidations: through the book, insurance backstop, deleveraging; never on a stale price; and a
liquidation never touches anyone else's position or margin."""

from exchange_fixtures import NOW, USDC, make_desk

from isoperp.ledger import risk
from isoperp.protocol.constants import INSURANCE_ACCOUNT, MAX_PRICE_AGE, TIF_IOC


def leveraged_long(margin=400 * USDC):
    """Account 1 is long 0.1 BTC at $60,000 on `margin` (15x); account 0 is the short."""
    desk = make_desk(accounts=4, margin=margin)
    desk.submit(0, False, 600_000, 10_000)
    desk.submit(1, True, 600_000, 10_000, tif=TIF_IOC)
    assert desk.ledger.position(1, 0).size == 10_000
    return desk


def bystander(desk):
    """Account 3: margin in BTC-USD, no position; and everyone's free collateral."""
    return desk.ledger.position(3, 0), [a.collateral for a in desk.ledger.accounts()]


def test_price_drop_liquidates_through_the_book():
    desk = leveraged_long()
    desk.submit(2, True, 571_000, 10_000)  # a bid above the long's bankruptcy price
    before = bystander(desk)
    fund = desk.ledger.exchange.insurance_fund
    report = desk.price(570_000)  # -5%: equity ~ 94 USDC < MMR ~ 171 USDC
    assert [r.size for r in report.liquidated] == [10_000]
    assert report.liquidated[0].price == 571_000
    assert desk.ledger.position(1, 0) is None  # closed; leftover margin back to free collateral
    assert desk.ledger.position(2, 0).size == 10_000
    assert desk.ledger.exchange.insurance_fund > fund  # the liquidation penalty
    assert bystander(desk)[0] == before[0]
    desk.ledger.check_invariants()


def test_no_bids_means_insurance_backstop():
    desk = leveraged_long()
    report = desk.price(570_000)
    assert not report.liquidated and [b.account_id for b in report.backstopped] == [1]
    assert desk.ledger.position(1, 0) is None
    assert desk.ledger.position(INSURANCE_ACCOUNT, 0).size == 10_000
    desk.ledger.check_invariants()


def test_bankrupt_position_with_empty_fund_is_deleveraged_against_the_profitable_short():
    desk = leveraged_long()
    short_before = desk.ledger.position(0, 0)
    report = desk.price(540_000)  # -10%: equity < 0, the fund (0) cannot take it
    assert not report.backstopped
    assert [(d.account_id, d.counterparty_id, d.size) for d in report.deleveraged] == [
        (1, 0, 10_000)
    ]
    assert desk.ledger.position(1, 0) is None
    assert desk.ledger.position(0, 0) is None or desk.ledger.position(0, 0).size == 0
    assert short_before.size == -10_000
    desk.ledger.check_invariants()


def test_stale_mark_liquidates_nothing():
    desk = leveraged_long()
    desk.price(570_000, at=NOW - MAX_PRICE_AGE - 1)  # an old (but newer than genesis) price
    report = desk.engine.liquidate(0)
    assert not report
    assert desk.ledger.position(1, 0).size == 10_000


def test_healthy_positions_are_left_alone():
    desk = leveraged_long(margin=5_000 * USDC)
    report = desk.price(570_000)
    assert not report
    p, m = desk.ledger.position(1, 0), desk.ledger.market(0)
    assert not risk.is_liquidatable(p, m)
