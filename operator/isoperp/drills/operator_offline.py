"""operator-offline: the operator stops; a forced request expires; anyone freezes; every user
escapes with exactly their value at the last finalized checkpoint; the vault keeps only documented
dust (the exchange's fee balance and insurance fund, which belong to no user, and funding rounding).
"""

from __future__ import annotations

from isoperp.drills.base import DrillContext
from isoperp.drills.setup import traders_with_positions
from isoperp.service import escape as escape_service


def run(ctx: DrillContext) -> None:
    traders_with_positions(ctx)
    settlement = ctx.system.settlement.functions
    hatch = ctx.system.hatch.functions
    final_seq = int(settlement.lastFinalizedSeq().call())
    ctx.log("the operator goes offline")
    user = ctx.as_user(1)
    fee = int(hatch.forcedRequestFee().call())
    user.client.transact(
        user.hatch.functions.requestForcedWithdrawal(ctx.account_id(1), 1_000 * 10**6),
        value=fee,
        context="requestForcedWithdrawal",
    )
    ctx.log("trader 1 asks for a forced withdrawal on-chain")
    ctx.advance(ctx.deployment.forced_deadline)
    ctx.log(f"{ctx.deployment.forced_deadline}s pass: the request is overdue, nobody served it")
    stranger = ctx.as_user(5)
    stranger.client.transact(stranger.hatch.functions.freeze(), context="freeze")
    frozen_seq = int(hatch.frozenSeq().call())
    ctx.check(bool(hatch.isFrozen().call()), "a stranger froze the exchange")
    ctx.check(frozen_seq == final_seq, f"escapes use the last finalized checkpoint #{final_seq}")
    seq, ledger = escape_service.escape_ledger(ctx.system)
    ctx.log("the escape state is rebuilt from L1 calldata alone (no operator, no database)")
    expected = {}
    for i in (1, 2, 3):
        expected[i] = escape_service.plan(ctx.system, ctx.user(i).address, seq, ledger).value
    results = {}
    for i in (1, 2, 3):
        _, results[i] = escape_service.execute(ctx.as_user(i), ctx.user(i).address)
        ctx.check(results[i].registered == expected[i], f"trader {i} registered its claim")
    pool, registered = int(hatch.pool().call()), int(hatch.registeredTotal().call())
    ctx.check(registered <= pool, f"the pool covers every claim ({registered} <= {pool})")
    ctx.end_claim_window()
    for i in (1, 2, 3):
        before = ctx.wallet(i)
        escape_service.withdraw(ctx.as_user(i), ctx.user(i).address, results[i])
        got = ctx.wallet(i) - before
        ctx.check(got == expected[i], f"trader {i} escaped with exactly {got} micro-USDC")
        ctx.facts[f"escape gas trader {i}"] = results[i].gas
    dust = (
        ctx.vault_balance() - ledger.exchange.fee_balance - max(0, ledger.exchange.insurance_fund)
    )
    ctx.check(0 <= dust <= 10, f"the vault keeps fees + insurance fund + {dust} micro-USDC dust")
    ctx.facts["vault after"] = ctx.vault_balance()
