"""Withdrawals as L1 sees them: which exist, which are final, which were claimed, with proofs."""

from __future__ import annotations

from dataclasses import dataclass

from isoperp.batch.builder import withdrawals_tree
from isoperp.chain.contracts import System
from isoperp.chain.l1 import PostedCheckpoint
from isoperp.protocol.header import WithdrawalLeaf


@dataclass(frozen=True, slots=True)
class WithdrawalStatus:
    seq: int
    index: int
    leaf: WithdrawalLeaf
    finalizes_at: int
    finalized: bool
    claimed: bool
    proof: tuple[bytes, ...]


def withdrawals_of(checkpoint: PostedCheckpoint) -> list[WithdrawalLeaf]:
    """The checkpoint's withdrawal leaves (known after it was replayed: forced payouts too)."""
    return list(checkpoint.withdrawals)


def withdrawal_statuses(
    system: System, checkpoints: list[PostedCheckpoint], *, recipient: str | None = None
) -> list[WithdrawalStatus]:
    """Every withdrawal (of ``recipient``, if given) with its finality and claim status."""
    settlement = system.settlement
    out = []
    for cp in checkpoints:
        leaves = withdrawals_of(cp)
        if not leaves:
            continue
        tree = withdrawals_tree(leaves)
        if tree.root != cp.header.withdrawals_root:
            continue  # the posted root does not match its own batch: nothing provable here
        finalized = bool(settlement.functions.isFinalized(cp.header.seq).call())
        for index, leaf in enumerate(leaves):
            if recipient is not None and leaf.recipient.lower() != recipient.lower():
                continue
            claimed = bool(settlement.functions.isClaimed(cp.header.seq, index).call())
            out.append(
                WithdrawalStatus(
                    cp.header.seq,
                    index,
                    leaf,
                    cp.finalizes_at,
                    finalized,
                    claimed,
                    tuple(tree.proof(index)),
                )
            )
    return out


def claim(system: System, w: WithdrawalStatus) -> int:
    """Claims one withdrawal on-chain; returns the gas used. Reverts surface as ContractReverted."""
    fn = system.settlement.functions.claimWithdrawal(
        w.seq, w.index, w.leaf.account_id, w.leaf.recipient, w.leaf.amount, list(w.proof)
    )
    receipt = system.client.transact(fn, context=f"claimWithdrawal #{w.seq}/{w.index}")
    return int(receipt["gasUsed"])
