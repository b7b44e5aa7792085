"""bad-debt: a position with negative equity at the finalized mark pays 0; the haircut applies; the
sum of payouts never exceeds the vault's pool; claiming in a different order pays the same."""

from __future__ import annotations

from isoperp.batch.builder import BatchBuilder
from isoperp.chain.l1 import latest_header
from isoperp.devnet import devnet_account
from isoperp.drills.base import ORACLE_INDEX, DrillContext
from isoperp.drills.escape_setup import freeze_by_liveness
from isoperp.drills.setup import BTC, traders_with_positions
from isoperp.ledger import risk
from isoperp.ledger.transitions import PriceUpdate
from isoperp.protocol.signing import sign_request
from isoperp.service import escape as escape_service


def run(ctx: DrillContext) -> None:
    traders_with_positions(ctx, margin=1_000, size=20_000)  # 12,000 USDC notional on 1,000
    # A faulty operator posts a crash price and stops before liquidating (no LIQUIDATE records).
    ledger = ctx.operator.ledger.copy()
    builder = BatchBuilder(ledger, latest_header(ctx.system, ctx.operator.checkpoints))
    crash = ctx.mid(BTC) * 80 // 100
    update = PriceUpdate(BTC, crash, ctx.now(), b"")
    builder.add(sign_request(bytes(devnet_account(ORACLE_INDEX).key), ctx.system.domain, update))
    sealed = builder.seal(timestamp=ctx.now())
    ctx.operator_client.transact(
        ctx.system.settlement.functions.postCheckpoint(sealed.header.as_abi_tuple(), sealed.data),
        context="postCheckpoint",
    )
    ctx.log("the operator posts BTC -20% and dies before liquidating")
    ctx.finalize()
    freeze_by_liveness(ctx)
    seq, frozen = escape_service.escape_ledger(ctx.system)
    long = frozen.position(ctx.account_id(2), BTC)
    market = frozen.market(BTC)
    assert long is not None and market is not None
    ctx.check(risk.equity(long, market) < 0, "trader 2's long has negative equity at the mark")
    hatch = ctx.system.hatch.functions
    pool = int(hatch.pool().call())
    order_a, order_b = (1, 2, 3), (3, 2, 1)
    payouts = []
    snapshot = ctx.snapshot()
    for order in (order_a, order_b):
        results = {i: escape_service.execute(ctx.as_user(i), ctx.user(i).address)[1] for i in order}
        claims = int(hatch.registeredTotal().call())
        ctx.check(claims > pool, f"registered claims {claims} exceed the pool {pool}: a haircut")
        ctx.end_claim_window()
        got = {}
        for i in order:
            before = ctx.wallet(i)
            escape_service.withdraw(ctx.as_user(i), ctx.user(i).address, results[i])
            got[i] = ctx.wallet(i) - before
        payouts.append(got)
        ctx.log(f"claim order {order}: payouts {got}")
        if order is order_a:
            ctx.revert_to(snapshot)
    ctx.check(payouts[0] == payouts[1], "claiming in a different order pays the same")
    plan2 = escape_service.plan(ctx.system, ctx.user(2).address, seq, frozen)
    ctx.check(plan2.position_values == (0,), "the bad-debt position is worth 0")
    ctx.check(sum(payouts[0].values()) <= pool, "the sum of payouts stays within the pool")
    ctx.facts["payouts"] = payouts[0]
