"""censorship: the operator keeps posting but skips a forced request; from the deadline on its
checkpoints are rejected, and freeze succeeds exactly at the deadline, not one second earlier."""

from __future__ import annotations

from web3.contract.contract import ContractFunction

from isoperp.chain.contracts import System
from isoperp.drills.base import DrillContext
from isoperp.service.operator import OperatorService

FREEZE_GAS = 400_000


def FREEZE(system: System) -> ContractFunction:
    return system.hatch.functions.freeze()


def run(ctx: DrillContext) -> None:
    ctx.deposit(1, 5_000)
    ctx.cycle()
    ctx.operator = OperatorService(ctx.system, ctx.inbox, serve_forced=False)  # the censor
    ctx.operator.sync()
    hatch = ctx.system.hatch.functions
    user = ctx.as_user(1)
    fee = int(hatch.forcedRequestFee().call())
    receipt = user.client.transact(
        user.hatch.functions.requestForcedWithdrawal(ctx.account_id(1), 5_000 * 10**6),
        value=fee,
        context="requestForcedWithdrawal",
    )
    requested = int(ctx.w3.eth.get_block(receipt["blockNumber"])["timestamp"])
    deadline = requested + ctx.deployment.forced_deadline
    ctx.log(f"trader 1 requests a forced withdrawal; deadline {deadline - ctx.start}s")
    ctx.deposit(2, 100)
    ctx.check(ctx.cycle().posted is not None, "before the deadline the censoring operator posts")
    forced_at, _ = hatch.freezableAt().call()
    ctx.check(forced_at == deadline, "the contract reports the deadline as the freeze time")
    ctx.deposit(2, 100)  # something for the operator's next checkpoint
    ctx.at(deadline - 2)
    ctx.set_next_time(deadline - 1)
    ctx.expect_revert(
        # explicit gas: no estimate, so the transaction is mined (and judged) at exactly that second
        lambda: user.client.transact(FREEZE(user), context="freeze", gas=FREEZE_GAS),
        "EscapeHatch_FreezeNotAllowed",
    )
    ctx.log("one second before the deadline, freeze is refused")
    snapshot = ctx.snapshot()
    ctx.set_next_time(deadline)
    ctx.expect_revert(ctx.operator.run_once, "Settlement_ForcedRequestOverdue")
    ctx.log("at the deadline, the censoring operator's checkpoint is rejected")
    ctx.revert_to(snapshot)
    ctx.set_next_time(deadline)
    receipt = user.client.transact(FREEZE(user), context="freeze", gas=FREEZE_GAS)
    frozen_at = int(ctx.w3.eth.get_block(receipt["blockNumber"])["timestamp"])
    ctx.check(frozen_at == deadline, "freeze succeeds exactly at the deadline")
    ctx.check(bool(hatch.isFrozen().call()), "the exchange is frozen for good")
    ctx.expect_revert(ctx.operator.run_once, "Settlement_Frozen")
