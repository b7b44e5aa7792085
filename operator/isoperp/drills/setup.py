"""Shared opening moves of the drills: funded traders holding isolated positions."""

from __future__ import annotations

from isoperp.drills.base import DrillContext

BTC = 0


def traders_with_positions(ctx: DrillContext, *, margin: int = 2_000, size: int = 20_000) -> None:
    """Trader 1 short and trader 2 long `size` lots of BTC-USD on `margin` USDC each; trader 3
    holds free collateral only. Everything is in a checkpoint that then finalizes."""
    for i in (1, 2, 3):
        ctx.deposit(i, 10_000)
    ctx.log("traders 1-3 deposit 10,000 USDC each")
    ctx.cycle()
    ctx.margin(1, BTC, margin)
    ctx.margin(2, BTC, margin)
    ctx.cycle()
    mid = ctx.mid(BTC)  # the genesis mark ($60,000 on the devnet)
    ctx.order(1, BTC, False, mid, size, nonce=1)
    ctx.order(2, BTC, True, mid, size, nonce=1, ioc=True)
    report = ctx.cycle()
    ctx.check(bool(report.posted), "the trade is checkpointed")
    ledger = ctx.operator.ledger
    p1, p2 = ledger.position(ctx.account_id(1), BTC), ledger.position(ctx.account_id(2), BTC)
    ctx.check(
        p1 is not None and p2 is not None and p1.size == -size and p2.size == size,
        f"trader 1 is short and trader 2 long {size} lots of BTC-USD",
    )
    ctx.finalize()
