"""flash-crash: BTC -30% in one oracle tick. The over-levered long is closed (book, insurance
backstop or deleveraging); losses stay isolated: no other user's margin or position in another
market is touched; no position is left liquidatable."""

from __future__ import annotations

from isoperp.drills.base import DrillContext
from isoperp.drills.setup import BTC, traders_with_positions
from isoperp.ledger import risk
from isoperp.protocol.constants import INSURANCE_ACCOUNT

ETH = 1


def run(ctx: DrillContext) -> None:
    traders_with_positions(ctx, margin=1_000, size=20_000)
    ctx.margin(3, ETH, 500)
    ctx.cycle()
    before = ctx.operator.ledger.copy()
    ctx.oracle(BTC, ctx.mid(BTC) * 70 // 100)
    report = ctx.cycle()
    ctx.log(
        f"BTC -30%: liquidated {len(report.liquidations)}, backstopped "
        f"{len(report.backstops)}, deleveraged {len(report.deleverages)}"
    )
    after = ctx.operator.ledger
    long_id = ctx.account_id(2)
    ctx.check(after.position(long_id, BTC) is None, "the over-levered long was closed")
    bystander = ctx.account_id(3)
    ctx.check(
        after.position(bystander, ETH) == before.position(bystander, ETH),
        "trader 3's ETH-USD margin is untouched",
    )
    ctx.check(
        after.account(bystander) == before.account(bystander),
        "trader 3's free collateral is untouched",
    )
    market = after.market(BTC)
    assert market is not None
    for p in after.positions(market_id=BTC):
        if p.account_id != INSURANCE_ACCOUNT:
            ctx.check(
                not risk.is_liquidatable(p, market),
                f"account {p.account_id} is not liquidatable after the crash",
            )
    after.check_invariants()
    ctx.log("ledger invariants hold (conservation, no negative balances, sizes sum to zero)")
    ctx.facts["insurance fund"] = after.exchange.insurance_fund
