"""Opening moves of the escape drills: positions in a finalized checkpoint, then a freeze."""

from __future__ import annotations

from isoperp.drills.base import DrillContext
from isoperp.drills.setup import traders_with_positions


def freeze_by_liveness(ctx: DrillContext) -> None:
    """Nothing finalizes for the liveness timeout; a stranger freezes."""
    hatch = ctx.system.hatch.functions
    _, liveness_at = hatch.freezableAt().call()
    ctx.at(max(ctx.now() + 1, liveness_at))
    stranger = ctx.as_user(5)
    stranger.client.transact(stranger.hatch.functions.freeze(), context="freeze")
    ctx.check(
        bool(hatch.isFrozen().call()),
        f"frozen after the liveness timeout; escapes use #{hatch.frozenSeq().call()}",
    )


def freeze_by_forced_request(ctx: DrillContext, requester: int) -> None:
    """`requester` asks for a forced withdrawal nobody serves; at its deadline a stranger freezes
    (before any checkpoint still inside its challenge window can finalize)."""
    user = ctx.as_user(requester)
    fee = int(user.hatch.functions.forcedRequestFee().call())
    user.client.transact(
        user.hatch.functions.requestForcedWithdrawal(ctx.account_id(requester), 1),
        value=fee,
        context="requestForcedWithdrawal",
    )
    forced_at, _ = ctx.system.hatch.functions.freezableAt().call()
    ctx.at(forced_at)
    stranger = ctx.as_user(5)
    stranger.client.transact(stranger.hatch.functions.freeze(), context="freeze")
    seq = ctx.system.hatch.functions.frozenSeq().call()
    ctx.check(
        bool(ctx.system.hatch.functions.isFrozen().call()),
        f"an unserved forced request froze the exchange; escapes use #{seq}",
    )


def positions_then_freeze(ctx: DrillContext) -> None:
    traders_with_positions(ctx)
    freeze_by_liveness(ctx)
