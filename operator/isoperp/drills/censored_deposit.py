"""censored-deposit: the operator keeps posting checkpoints but never includes one deposit; anyone
may freeze (reason 3) exactly at the deposit's deadline, not one second earlier; the depositor gets
the full amount back, everyone else escapes, and nothing in the vault is lost."""

from __future__ import annotations

from web3.logs import DISCARD

from isoperp.chain.l1 import read_deposits
from isoperp.demo import USDC
from isoperp.drills.base import DrillContext
from isoperp.drills.setup import BTC
from isoperp.service import escape as escape_service
from isoperp.service.operator import OperatorService

FREEZE_GAS = 400_000
DEPOSITS = {1: 5_000, 2: 3_000}  # included
CENSORED = 700  # trader 3's deposit, never included


def run(ctx: DrillContext) -> None:
    for i, usdc in DEPOSITS.items():
        ctx.deposit(i, usdc)
    ctx.cycle()
    ctx.margin(1, BTC, 1_000)
    ctx.cycle()
    ctx.finalize()
    censored_index = len(read_deposits(ctx.system))
    ctx.operator = OperatorService(ctx.system, ctx.inbox, censor_deposits_from=censored_index)
    ctx.operator.sync()
    ctx.deposit(3, CENSORED)
    d = read_deposits(ctx.system)[censored_index]
    deadline = d.timestamp + ctx.deployment.forced_deadline
    ctx.log(
        f"trader 3 deposits {CENSORED} USDC (deposit #{d.index}); the operator censors it; "
        f"inclusion deadline t+{deadline - ctx.start}s"
    )
    ctx.margin(2, BTC, 500)
    ctx.check(ctx.cycle().posted is not None, "the censoring operator keeps posting")
    settlement = ctx.system.settlement.functions
    latest = settlement.getCheckpoint(settlement.latestSeq().call()).call()
    ctx.check(
        int(latest[escape_service.CHECKPOINT_DEPOSIT_CURSOR]) == censored_index,
        f"its checkpoint stops at deposit cursor {censored_index}: deposit #{d.index} left out",
    )
    pending = escape_service.oldest_unincluded_deposit(ctx.system)
    ctx.check(
        pending is not None and pending.deposit.index == d.index and pending.deadline == deadline,
        "the oldest unincluded deposit is the censored one, due at its timestamp + forcedDeadline",
    )
    ctx.at(deadline - 10)
    ctx.margin(1, BTC, 100)
    ctx.check(ctx.cycle().posted is not None, "ten seconds before the deadline it posts again")

    user = ctx.as_user(4)  # anyone may freeze
    freeze_for_deposit = user.hatch.functions.freezeForDeposit(d.owner, d.amount, d.timestamp)
    ctx.at(deadline - 2)
    ctx.set_next_time(deadline - 1)
    ctx.expect_revert(
        # explicit gas: no estimate, so the transaction is mined (and judged) at exactly that second
        lambda: user.client.transact(
            freeze_for_deposit, context="freezeForDeposit", gas=FREEZE_GAS
        ),
        "EscapeHatch_DepositNotOverdue",
    )
    ctx.log("one second before the deadline, freezeForDeposit is refused")
    ctx.set_next_time(deadline)
    receipt = user.client.transact(freeze_for_deposit, context="freezeForDeposit", gas=FREEZE_GAS)
    frozen_at = int(ctx.w3.eth.get_block(receipt["blockNumber"])["timestamp"])
    event = ctx.system.hatch.events.Frozen().process_receipt(receipt, errors=DISCARD)[0]["args"]
    ctx.check(frozen_at == deadline, "freezeForDeposit succeeds exactly at the deadline")
    ctx.check(
        int(event["reason"]) == escape_service.FREEZE_DEPOSIT_OVERDUE,
        f"the freeze reason is 3 ({escape_service.FREEZE_REASONS[3]})",
    )
    hatch = ctx.system.hatch.functions
    ctx.log(f"escapes use checkpoint #{hatch.frozenSeq().call()}; pool {hatch.pool().call():,}")

    got: dict[int, int] = {}
    before = ctx.wallet(3)
    _, r = escape_service.execute(ctx.as_user(3), ctx.user(3).address)
    got[3] = ctx.wallet(3) - before
    ctx.check(
        r.refunded == got[3] == CENSORED * USDC,
        f"trader 3 is refunded and withdraws the full {CENSORED} USDC at once",
    )
    results = {}
    for i in DEPOSITS:
        before = ctx.wallet(i)
        results[i] = (before, escape_service.execute(ctx.as_user(i), ctx.user(i).address)[1])
    ctx.end_claim_window()
    for i, (before, result) in results.items():
        escape_service.withdraw(ctx.as_user(i), ctx.user(i).address, result)
        got[i] = ctx.wallet(i) - before
    ctx.log(f"paid out: {got}")
    ctx.check(
        all(got[i] == usdc * USDC for i, usdc in DEPOSITS.items()),
        "traders 1 and 2 escape with everything they deposited (no trades, no haircut)",
    )
    owed = sum(int(hatch.owedTo(ctx.user(i).address).call()) for i in (1, 2, 3))
    deposited = int(ctx.system.vault.functions.depositTotal().call())
    ctx.check(
        sum(got.values()) + owed == deposited == (sum(DEPOSITS.values()) + CENSORED) * USDC,
        f"nothing lost: paid {sum(got.values()):,} + still owed {owed:,} = deposited {deposited:,}",
    )
    ctx.check(ctx.vault_balance() == owed, "the vault holds exactly what is still owed")
    ctx.facts["payouts"] = got
