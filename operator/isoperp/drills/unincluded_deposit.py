"""unincluded-deposit: deposits the operator never included are refunded once, and only those."""

from __future__ import annotations

from isoperp.chain.l1 import read_deposits
from isoperp.drills.base import DrillContext
from isoperp.drills.escape_setup import freeze_by_liveness


def run(ctx: DrillContext) -> None:
    ctx.deposit(1, 1_000)
    ctx.cycle()
    ctx.finalize()
    ctx.deposit(2, 700)
    ctx.deposit(1, 300)
    ctx.log("two more deposits; the operator never includes them")
    freeze_by_liveness(ctx)
    deposits = read_deposits(ctx.system)
    user = ctx.as_user(4)  # anyone may submit a refund: it is credited to the owner
    fns = user.hatch.functions
    included = deposits[0]
    ctx.expect_revert(
        lambda: user.client.transact(
            fns.refundDeposit(included.index, included.owner, included.amount, included.timestamp),
            context="refundDeposit",
        ),
        "EscapeHatch_DepositIncluded",
    )
    d = deposits[1]
    ctx.expect_revert(
        lambda: user.client.transact(
            fns.refundDeposit(d.index, d.owner, d.amount + 1, d.timestamp), context="refundDeposit"
        ),
        "EscapeHatch_DepositMismatch",
    )
    for d in deposits[1:]:
        user.client.transact(
            fns.refundDeposit(d.index, d.owner, d.amount, d.timestamp), context="refundDeposit"
        )
    ctx.check(
        int(fns.creditOf(ctx.user(2).address).call()) == 700 * 10**6,
        "trader 2's unincluded deposit is refunded in full",
    )
    d = deposits[1]
    ctx.expect_revert(
        lambda: user.client.transact(
            fns.refundDeposit(d.index, d.owner, d.amount, d.timestamp), context="refundDeposit"
        ),
        "EscapeHatch_AlreadyRefunded",
    )
    before = ctx.wallet(2)
    ctx.as_user(2).client.transact(
        ctx.as_user(2).hatch.functions.withdrawEscaped(), context="withdrawEscaped"
    )
    ctx.check(
        ctx.wallet(2) - before == 700 * 10**6,
        "trader 2 withdraws the refund at once (refunds do not wait for the claim window)",
    )
