"""Withdrawals as L1 sees them: which exist, which are final, which were claimed, with proofs.

Every payout is a leaf of ONE global append-only withdrawals tree (depth 32) whose root, count and
total each checkpoint's header copies from the exchange leaf. A leaf with global index ``i`` is
claimable against any finalized checkpoint whose ``withdrawalCount > i``; the contract's claimed
bitmap is keyed by ``i`` alone, so it is paid once whichever checkpoint proves it. Proofs here are
built from the replayed checkpoints (L1 data only): the tree of the first ``withdrawalCount``
leaves of the proving checkpoint, whose root the replay checked against the posted header.
"""

from __future__ import annotations

from dataclasses import dataclass

from isoperp.chain.contracts import System
from isoperp.chain.l1 import PostedCheckpoint
from isoperp.errors import ProtocolError
from isoperp.protocol.constants import WITHDRAWAL_TREE_DEPTH
from isoperp.protocol.header import WithdrawalLeaf
from isoperp.tree.merkle import SparseMerkleTree


@dataclass(frozen=True, slots=True)
class WithdrawalStatus:
    """Withdrawal ``index`` (global) appended by checkpoint ``added_seq``; ``seq`` is the
    checkpoint its ``proof`` is against: the last finalized one when that holds the leaf, else
    the (pending) checkpoint that added it."""

    seq: int
    index: int
    leaf: WithdrawalLeaf
    finalizes_at: int
    finalized: bool
    claimed: bool
    proof: tuple[bytes, ...]
    added_seq: int


def withdrawals_of(checkpoint: PostedCheckpoint) -> list[WithdrawalLeaf]:
    """The withdrawal leaves the checkpoint appended (known after it was replayed)."""
    return list(checkpoint.withdrawals)


def first_index(checkpoint: PostedCheckpoint) -> int:
    """Global index of the first leaf the checkpoint appended."""
    return checkpoint.header.withdrawal_count - len(checkpoint.withdrawals)


def withdrawal_statuses(
    system: System, checkpoints: list[PostedCheckpoint], *, recipient: str | None = None
) -> list[WithdrawalStatus]:
    """Every withdrawal (paid to ``recipient``, if given) with its finality, its claim status and
    a proof against the newest finalized checkpoint that holds it (or, while none does, against
    the checkpoint that added it). ``checkpoints`` are replayed, in order, from seq 1."""
    settlement = system.settlement
    last_final = int(settlement.functions.lastFinalizedSeq().call())
    tree = SparseMerkleTree(WITHDRAWAL_TREE_DEPTH)
    added: list[tuple[WithdrawalLeaf, PostedCheckpoint]] = []
    out: list[WithdrawalStatus] = []

    def prove(cp: PostedCheckpoint, leaves: range, finalized: bool) -> None:
        if tree.root != cp.header.withdrawals_root:  # replay checks it: a broken invariant
            raise ProtocolError(
                f"checkpoint {cp.header.seq}: withdrawals root does not match its leaves",
                code="withdrawals_mismatch",
            )
        for index in leaves:
            leaf, source = added[index]
            if recipient is not None and leaf.recipient.lower() != recipient.lower():
                continue
            claimed = bool(settlement.functions.isClaimed(index).call())
            out.append(
                WithdrawalStatus(
                    cp.header.seq,
                    index,
                    leaf,
                    cp.finalizes_at,
                    finalized,
                    claimed,
                    tuple(tree.proof(index)),
                    source.header.seq,
                )
            )

    for cp in checkpoints:
        start = first_index(cp)
        if start != len(added):
            raise ProtocolError(
                f"checkpoint {cp.header.seq}: its withdrawals start at {start}, not {len(added)}",
                code="withdrawals_mismatch",
            )
        for offset, leaf in enumerate(cp.withdrawals):
            tree.set(start + offset, leaf.leaf_hash)
            added.append((leaf, cp))
        if cp.header.seq == last_final:
            prove(cp, range(len(added)), True)
        elif cp.header.seq > last_final:
            prove(cp, range(start, len(added)), False)
    return out


def claim(system: System, w: WithdrawalStatus) -> int:
    """Claims one withdrawal on-chain; returns the gas used. Reverts surface as ContractReverted."""
    fn = system.settlement.functions.claimWithdrawal(
        w.seq, w.index, w.leaf.account_id, w.leaf.recipient, w.leaf.amount, list(w.proof)
    )
    receipt = system.client.transact(fn, context=f"claimWithdrawal #{w.seq}/{w.index}")
    return int(receipt["gasUsed"])
