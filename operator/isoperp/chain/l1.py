"""Reading the exchange from L1 alone: deposits from the vault's events, checkpoints and their batch
data from the calldata of the posting transactions. This is what lets anyone (the operator after a
crash, a user whose operator vanished, an auditor) rebuild the state without the operator.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from hexbytes import HexBytes

from isoperp.chain.contracts import System
from isoperp.chain.events import CheckpointLog, QueuedDeposit, QueuedForced
from isoperp.chain.watcher import ChainWatcher
from isoperp.errors import ProtocolError
from isoperp.ledger.ledger import Ledger
from isoperp.ledger.markets import DEVNET_MARKETS, DEVNET_ORACLE
from isoperp.ledger.transitions import Transition
from isoperp.protocol.batch import decode_batch
from isoperp.protocol.header import CheckpointHeader, WithdrawalLeaf

__all__ = ["QueuedDeposit", "QueuedForced"]  # re-exported: the events of the queues

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PostedCheckpoint:
    """A checkpoint as L1 has it. ``withdrawals`` (the leaves its batch appended to the global
    withdrawals tree, from index ``header.withdrawal_count - len(withdrawals)`` on) and ``slots``
    (the global withdrawals-tree index each transition filled, or None) are known once the batch
    was replayed (``replay``): forced payouts depend on the state, not only on the records."""

    header: CheckpointHeader
    data: bytes
    transitions: tuple[Transition, ...]
    tx_hash: str
    block: int
    finalizes_at: int
    withdrawals: tuple[WithdrawalLeaf, ...] = ()
    slots: tuple[int | None, ...] = ()


def scan(system: System) -> ChainWatcher:
    """A watcher that has read every event of the deployment up to the chain's head."""
    watcher = ChainWatcher.for_system(system)
    watcher.poll()
    return watcher


def read_deposits(system: System, *, from_index: int = 0) -> list[QueuedDeposit]:
    """Deposits with queue index >= ``from_index``, in queue order."""
    return scan(system).deposits[from_index:]


def read_forced_requests(system: System, *, from_index: int = 0) -> list[QueuedForced]:
    """Forced requests with queue index >= ``from_index``, in queue order."""
    return scan(system).forced[from_index:]


def read_checkpoints(system: System, *, from_seq: int = 1) -> list[PostedCheckpoint]:
    """Posted checkpoints with seq >= ``from_seq``, header and batch data decoded from calldata."""
    return [read_posted(system, log) for log in scan(system).checkpoints[max(from_seq, 1) - 1 :]]


def read_posted(system: System, log: CheckpointLog) -> PostedCheckpoint:
    """The checkpoint of a CheckpointPosted event: header and batch data decoded from the
    calldata of its transaction (which must be a direct postCheckpoint call)
    and checked against the event."""
    tx = system.client.w3.eth.get_transaction(HexBytes(log.tx_hash))
    fn, params = system.settlement.decode_function_input(tx["input"])
    if fn.fn_name != "postCheckpoint":
        raise ProtocolError(
            f"checkpoint {log.seq} was not posted by a direct postCheckpoint call", code="calldata"
        )
    raw = params["header"]
    header = CheckpointHeader(*(raw.values() if isinstance(raw, dict) else raw))
    if header.hash != log.checkpoint_hash or header.seq != log.seq:
        raise ProtocolError(
            f"checkpoint {log.seq}: calldata does not match the event", code="calldata"
        )
    data = bytes(params["batchData"])
    return PostedCheckpoint(
        header=header,
        data=data,
        transitions=tuple(decode_batch(data)),
        tx_hash="0x" + log.tx_hash.hex(),
        block=log.block,
        finalizes_at=log.finalizes_at,
    )


def genesis_ledger(system: System) -> Ledger:
    oracle = system.deployment.oracle or DEVNET_ORACLE
    # the fee recipient is the Settlement's operator (FEE_COLLECT pays it)
    ledger = Ledger.genesis(
        DEVNET_MARKETS, system.domain, oracle, fee_recipient=system.deployment.operator
    )
    expected = system.deployment.genesis_state_root
    if "0x" + ledger.state_root.hex() != expected:
        raise ProtocolError(
            "the devnet markets do not reproduce the deployment's genesis root", code="genesis"
        )
    return ledger


def replay(ledger: Ledger, checkpoint: PostedCheckpoint) -> PostedCheckpoint:
    """Re-executes one checkpoint's batch on ``ledger``, checks the posted state root and the
    withdrawal fields (the exchange leaf's: root, count and total of the global withdrawals tree),
    and returns the checkpoint with the withdrawal leaves it appended."""
    first = ledger.exchange.withdrawal_count
    slots: list[int | None] = []
    for t in checkpoint.transitions:
        before = ledger.exchange.withdrawal_count
        ledger.apply(t)
        slots.append(before if ledger.exchange.withdrawal_count > before else None)
    if ledger.state_root != checkpoint.header.state_root:
        raise ProtocolError(
            f"checkpoint {checkpoint.header.seq}: re-executed root 0x{ledger.state_root.hex()} "
            f"!= posted 0x{checkpoint.header.state_root.hex()}",
            code="root_mismatch",
        )
    ex, header = ledger.exchange, checkpoint.header
    if (ex.withdrawals_root, ex.withdrawal_count, ex.withdrawal_total) != (
        header.withdrawals_root,
        header.withdrawal_count,
        header.withdrawal_total,
    ):
        raise ProtocolError(
            f"checkpoint {header.seq}: withdrawals root, count or total do not match the state's",
            code="withdrawals_mismatch",
        )
    leaves: list[WithdrawalLeaf] = ledger.withdrawals(first)
    return dataclasses.replace(checkpoint, withdrawals=tuple(leaves), slots=tuple(slots))


def rebuild(
    system: System, *, until_seq: int | None = None
) -> tuple[Ledger, list[PostedCheckpoint]]:
    """The ledger after every posted checkpoint (or only up to ``until_seq``, e.g. the escape
    checkpoint), rebuilt from L1 alone, and those checkpoints."""
    ledger = genesis_ledger(system)
    checkpoints = read_checkpoints(system)
    if until_seq is not None:
        checkpoints = [cp for cp in checkpoints if cp.header.seq <= until_seq]
    checkpoints = [replay(ledger, cp) for cp in checkpoints]
    logger.info("rebuilt state from %d checkpoints", len(checkpoints))
    return ledger, checkpoints


def latest_header(system: System, checkpoints: list[PostedCheckpoint]) -> CheckpointHeader:
    if checkpoints:
        return checkpoints[-1].header
    return CheckpointHeader.genesis(bytes.fromhex(system.deployment.genesis_state_root[2:]))
