"""stale-proof: escapes against a pending checkpoint's root, an older finalized root, and a tampered
proof all revert; the proof against the escape root succeeds."""

from __future__ import annotations

from isoperp.drills.base import DrillContext
from isoperp.drills.escape_setup import freeze_by_forced_request
from isoperp.drills.setup import traders_with_positions
from isoperp.protocol.leaves import account_index, solidity_struct
from isoperp.service.escape import escape_ledger


def run(ctx: DrillContext) -> None:
    traders_with_positions(ctx)
    older = ctx.operator.ledger.copy()  # state of the finalized checkpoint
    ctx.deposit(3, 5_000)  # trader 3's balance changes in a checkpoint that never finalizes
    ctx.cycle()
    pending = ctx.operator.ledger.copy()
    ctx.log("a newer checkpoint is posted but still inside its challenge window")
    freeze_by_forced_request(ctx, 1)
    _, escape = escape_ledger(ctx.system)
    user = ctx.as_user(3)
    fns = user.hatch.functions
    leaf = account_index(ctx.account_id(3))

    def attempt(ledger: object) -> None:
        acct = ledger.account(ctx.account_id(3))  # type: ignore[attr-defined]
        user.client.transact(
            fns.escape(solidity_struct(acct), ledger.proof(leaf), []),  # type: ignore[attr-defined]
            context="escape",
        )

    ctx.expect_revert(lambda: attempt(pending), "EscapeHatch_InvalidStateProof")
    ctx.log("the pending checkpoint's state is refused")
    ctx.deposit(3, 1)  # make the older finalized state differ from the escape state
    older_acct = older.account(ctx.account_id(3))
    escape_acct = escape.account(ctx.account_id(3))
    assert older_acct is not None and escape_acct is not None
    ctx.check(older_acct == escape_acct, "trader 3's account is the same in both finalized states")
    proof = escape.proof(leaf)
    proof[5] = bytes(b ^ 0x01 for b in proof[5])
    ctx.expect_revert(
        lambda: user.client.transact(
            fns.escape(solidity_struct(escape_acct), proof, []), context="escape"
        ),
        "EscapeHatch_InvalidStateProof",
    )
    ctx.log("a tampered proof is refused")
    forged = escape_acct.__class__(
        escape_acct.account_id, escape_acct.owner, escape_acct.collateral + 1, escape_acct.nonce
    )
    ctx.expect_revert(
        lambda: user.client.transact(
            fns.escape(solidity_struct(forged), escape.proof(leaf), []), context="escape"
        ),
        "EscapeHatch_InvalidStateProof",
    )
    ctx.log("an inflated balance (an older or invented leaf) is refused")
    attempt(escape)
    ctx.check(
        int(fns.registeredOf(ctx.user(3).address).call()) > 0,
        "the proof against the escape root succeeds",
    )
