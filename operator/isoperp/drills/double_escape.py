"""double-escape: the same leaf twice, an aliased index, a short/long proof, and an internal node
passed as a leaf all revert."""

from __future__ import annotations

from isoperp.drills.base import DrillContext
from isoperp.drills.escape_setup import positions_then_freeze
from isoperp.protocol.leaves import account_index, market_index, position_index, solidity_struct
from isoperp.service.escape import escape_ledger
from isoperp.tree.merkle import hash_node


def run(ctx: DrillContext) -> None:
    positions_then_freeze(ctx)
    _, ledger = escape_ledger(ctx.system)
    user = ctx.as_user(2)
    fns = user.hatch.functions
    account_id = ctx.account_id(2)
    acct = ledger.account(account_id)
    pos = ledger.position(account_id, 0)
    assert acct is not None and pos is not None
    a_proof = ledger.proof(account_index(account_id))
    p_proof = ledger.proof(position_index(account_id, 0))
    market = ledger.market(0)
    assert market is not None
    user.client.transact(
        fns.proveMarket(solidity_struct(market), ledger.proof(market_index(0))),
        context="proveMarket",
    )

    def send(a: object, proof: list[bytes], positions: list[object]) -> None:
        user.client.transact(fns.escape(a, proof, positions), context="escape")

    aliased = (account_id + (1 << 24), acct.owner, acct.collateral, acct.nonce)
    ctx.expect_revert(lambda: send(aliased, a_proof, []), "LeafLib_AccountOutOfRange")
    ctx.expect_revert(
        lambda: send(solidity_struct(acct), a_proof[:-1], []), "MerkleProof_WrongLength"
    )
    ctx.expect_revert(
        lambda: send(solidity_struct(acct), [*a_proof, b"\0" * 32], []), "MerkleProof_WrongLength"
    )
    # An internal node as a leaf: the parent of the account leaf and its sibling, one level up.
    node = hash_node(a_proof[0], a_proof[0])
    fake = (account_id >> 1, acct.owner, int.from_bytes(node[:16], "big"), 0)
    ctx.expect_revert(
        lambda: send(fake, [*a_proof[1:], b"\0" * 32], []), "EscapeHatch_InvalidStateProof"
    )
    send(solidity_struct(acct), a_proof, [(solidity_struct(pos), p_proof)])
    ctx.log("trader 2 escapes the account and its position once")
    ctx.expect_revert(
        lambda: send(solidity_struct(acct), a_proof, []), "EscapeHatch_AlreadyEscaped"
    )
    ctx.expect_revert(
        lambda: send(solidity_struct(acct), a_proof, [(solidity_struct(pos), p_proof)]),
        "EscapeHatch_AlreadyEscaped",
    )
    ctx.check(
        bool(fns.isEscaped(position_index(account_id, 0)).call()), "each leaf escapes exactly once"
    )
