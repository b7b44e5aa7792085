"""escape-claim-window: registered claims exceed the escape pool (bad debt), so each registered
claim is paid floor(value × pool / registeredTotal), in any claim order; a claim after the window
gets only the residual. No number the operator wrote enters the haircut (protocol v2 headers carry
no claims total at all: the denominator is what escapes registered on-chain)."""

from __future__ import annotations

from isoperp.batch.builder import BatchBuilder
from isoperp.chain.l1 import latest_header
from isoperp.devnet import devnet_account
from isoperp.drills.base import ORACLE_INDEX, DrillContext
from isoperp.drills.escape_setup import freeze_by_liveness
from isoperp.drills.setup import BTC, traders_with_positions
from isoperp.ledger.transitions import PriceUpdate
from isoperp.protocol.signing import sign_request
from isoperp.service import escape as escape_service

LATE = 4  # a trader with free collateral only, who escapes after the window
REGISTERED = (1, 2, 3)


def run(ctx: DrillContext) -> None:
    ctx.deposit(LATE, 1_000)
    traders_with_positions(ctx, margin=1_000, size=20_000)  # 12,000 USDC notional on 1,000
    # A faulty operator posts a crash price and dies before liquidating: positions in bad debt.
    builder = BatchBuilder(
        ctx.operator.ledger.copy(), latest_header(ctx.system, ctx.operator.checkpoints)
    )
    update = PriceUpdate(BTC, ctx.mid(BTC) * 80 // 100, ctx.now(), b"")
    builder.add(sign_request(bytes(devnet_account(ORACLE_INDEX).key), ctx.system.domain, update))
    sealed = builder.seal(timestamp=ctx.now())
    header = sealed.header
    ctx.operator_client.transact(
        ctx.system.settlement.functions.postCheckpoint(header.as_abi_tuple(), sealed.data),
        context="postCheckpoint",
    )
    ctx.log("the operator posts BTC -20% and dies")
    ctx.finalize()
    freeze_by_liveness(ctx)
    hatch = ctx.system.hatch.functions
    seq = int(hatch.frozenSeq().call())
    ctx.check(seq == header.seq, f"the escape checkpoint is #{seq}, the crash")
    pool = int(hatch.pool().call())

    # The same frozen state, claimed in two orders (evm_snapshot / evm_revert): each order
    # registers during the window, then withdraws after it in the same order.
    snapshot = ctx.snapshot()
    runs = []
    for order in (REGISTERED, tuple(reversed(REGISTERED))):
        for i in order:
            escape_service.execute(ctx.as_user(i), ctx.user(i).address, pay=False)
        values = {i: int(hatch.registeredOf(ctx.user(i).address).call()) for i in REGISTERED}
        total = int(hatch.registeredTotal().call())
        ctx.log(f"claim order {order}: registered {values}; total {total:,}, pool {pool:,}")
        ctx.check(total == sum(values.values()), "the registered total is the sum of the claims")
        ctx.check(total > pool, "registered claims exceed the pool: a haircut")
        expected = {i: v * pool // total for i, v in values.items()}
        ctx.end_claim_window()
        owed = {i: int(hatch.owedTo(ctx.user(i).address).call()) for i in REGISTERED}
        ctx.check(owed == expected, f"each payout is floor(value × pool / registeredTotal): {owed}")
        got = {}
        for i in order:
            before = ctx.wallet(i)
            user = ctx.as_user(i)
            user.client.transact(user.hatch.functions.withdrawEscaped(), context="withdrawEscaped")
            got[i] = ctx.wallet(i) - before
        ctx.log(f"withdrawn in order {order}: {got}")
        ctx.check(got == expected, "each owner is paid exactly the formula")
        runs.append(got)
        if len(runs) == 1:
            ctx.revert_to(snapshot)
    ctx.check(runs[0] == runs[1], "both claim orders pay exactly the same")
    ctx.check(sum(runs[0].values()) <= pool, "the sum of payouts stays within the pool")

    residual = int(hatch.residual().call())
    late = ctx.user(LATE).address
    _, r = escape_service.execute(ctx.as_user(LATE), late, pay=False)
    plan_value = r.credited  # what the late escape was credited
    ctx.check(
        r.registered == 0 and plan_value == min(1_000 * 10**6, residual),
        f"trader {LATE} escapes after the window: credited {plan_value:,} = min(value, residual "
        f"{residual:,}), nothing registered",
    )
    ctx.check(int(hatch.registeredTotal().call()) == total, "the registered total is unchanged")
    ctx.facts["payouts"] = runs[0]
    ctx.facts["late_credit"] = plan_value
