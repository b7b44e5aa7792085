"""bad-debt: a position with negative equity at the finalized mark pays 0; the claims exceed the
vault's pool; escapes are paid in full until the pool cannot cover one, which is refused (protocol
v2 headers carry no claimsTotal: the escape registration of issue 10 replaces the haircut); the sum
of payouts never exceeds the pool."""

from __future__ import annotations

from isoperp.batch.builder import BatchBuilder
from isoperp.chain.l1 import latest_header
from isoperp.devnet import devnet_account
from isoperp.drills.base import ORACLE_INDEX, DrillContext
from isoperp.drills.escape_setup import freeze_by_liveness
from isoperp.drills.setup import BTC, traders_with_positions
from isoperp.errors import ContractReverted
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
    pool, _, _ = ctx.system.settlement.functions.escapePool().call()
    values = {
        i: escape_service.plan(ctx.system, ctx.user(i).address, seq, frozen).value
        for i in (1, 2, 3)
    }
    claims = sum(values.values())
    ctx.check(claims > pool, f"claims {claims} exceed the pool {pool}")
    # Protocol v2 headers carry no claimsTotal: until the escape registration replaces the haircut,
    # escapes are paid in full, first come first served, and one the pool cannot cover is refused.
    payouts: dict[int, int] = {}
    for i in (1, 2, 3):
        before = ctx.wallet(i)
        if sum(payouts.values()) + values[i] <= pool:
            escape_service.execute(ctx.as_user(i), ctx.user(i).address)
            payouts[i] = ctx.wallet(i) - before
            ctx.check(payouts[i] == values[i], f"trader {i} escaped in full with {payouts[i]}")
            continue
        try:
            escape_service.execute(ctx.as_user(i), ctx.user(i).address)
        except ContractReverted as exc:
            ctx.check(
                exc.error_name == "Settlement_EscapePoolExceeded",
                f"trader {i}'s escape beyond the pool is refused ({exc.error_name})",
            )
        else:
            ctx.check(False, f"trader {i}'s escape beyond the pool was paid")
    plan2 = escape_service.plan(ctx.system, ctx.user(2).address, seq, frozen)
    ctx.check(plan2.position_values == (0,), "the bad-debt position is worth 0")
    ctx.check(sum(payouts.values()) <= pool, "the sum of payouts stays within the pool")
    ctx.facts["payouts"] = payouts
