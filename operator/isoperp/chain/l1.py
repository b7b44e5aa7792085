"""Reading the exchange from L1 alone: deposits from the vault's events, checkpoints and their batch
data from the calldata of the posting transactions. This is what lets anyone (the operator after a
crash, a user whose operator vanished, an auditor) rebuild the state without the operator.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from hexbytes import HexBytes

from isoperp.batch.builder import trace_tree
from isoperp.chain.contracts import System
from isoperp.chain.events import CheckpointLog, QueuedDeposit, QueuedForced
from isoperp.chain.genesis import read_genesis
from isoperp.chain.watcher import ChainWatcher
from isoperp.errors import ProtocolError, TransitionRejected
from isoperp.ledger.ledger import Ledger
from isoperp.ledger.transitions import Transition
from isoperp.protocol.batch import batch_hash, decode_entries
from isoperp.protocol.header import CheckpointHeader, WithdrawalLeaf

__all__ = ["QueuedDeposit", "QueuedForced"]  # re-exported: the events of the queues

logger = logging.getLogger(__name__)


class InvalidCheckpoint(ProtocolError):
    """A posted checkpoint that its own batch data proves wrong: undecodable data, a record the
    rules reject, a published ``stateRootAfter_i`` the re-execution does not reach, or a header
    commitment (batchHash, traceRoot, recordCount, batchLength, stateRoot, withdrawalsRoot) that
    does not match the data. ``record_index`` is the first bad record (None: the checkpoint as a
    whole). Such a checkpoint is fraud (docs/PROTOCOL.md section 3): it is reported, never skipped.
    """

    code = "invalid_checkpoint"

    def __init__(self, seq: int, record_index: int | None, reason: str, message: str) -> None:
        where = "" if record_index is None else f" record {record_index}"
        super().__init__(f"checkpoint {seq}{where} is invalid ({reason}): {message}")
        self.seq = seq
        self.record_index = record_index
        self.reason = reason


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
    records: tuple[bytes, ...] = ()
    roots_after: tuple[bytes, ...] = ()


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
    return decode_posted(
        header,
        bytes(params["batchData"]),
        tx_hash="0x" + log.tx_hash.hex(),
        block=log.block,
        finalizes_at=log.finalizes_at,
    )


def decode_posted(
    header: CheckpointHeader, data: bytes, *, tx_hash: str, block: int, finalizes_at: int
) -> PostedCheckpoint:
    """A posted checkpoint from its header and batch data; undecodable data makes it invalid."""
    try:
        entries = decode_entries(data)
    except ProtocolError as exc:
        raise InvalidCheckpoint(header.seq, None, "bad_batch", exc.message) from exc
    return PostedCheckpoint(
        header=header,
        data=data,
        transitions=tuple(e.transition for e in entries),
        tx_hash=tx_hash,
        block=block,
        finalizes_at=finalizes_at,
        records=tuple(e.record for e in entries),
        roots_after=tuple(e.root_after for e in entries),
    )


def genesis_ledger(system: System) -> Ledger:
    """The genesis state of the deployment, from L1 alone: the markets the Settlement published
    at deployment (``chain.genesis.read_genesis``, checked against the genesis checkpoint's root),
    the insurance account and the exchange leaf. The deployment file's root must agree."""
    deployment = system.deployment
    genesis = read_genesis(system.client.w3, deployment.settlement, block=deployment.deploy_block)
    oracle = deployment.oracle or str(system.settlement.functions.oracle().call())
    # the fee recipient is the Settlement's operator (FEE_COLLECT pays it)
    ledger = Ledger.genesis(
        genesis.markets, system.domain, oracle, fee_recipient=deployment.operator
    )
    if "0x" + genesis.state_root.hex() != deployment.genesis_state_root.lower():
        raise ProtocolError(
            f"the Settlement's genesis root 0x{genesis.state_root.hex()} is not the deployment "
            f"file's {deployment.genesis_state_root}",
            code="genesis",
        )
    return ledger


def check_commitments(checkpoint: PostedCheckpoint) -> None:
    """The header's commitments to the batch data, checked without a ledger: batchLength,
    batchHash (chunk hashes), recordCount and traceRoot. Raises InvalidCheckpoint."""
    header, data = checkpoint.header, checkpoint.data
    seq = header.seq
    if header.batch_length != len(data):
        raise InvalidCheckpoint(
            seq, None, "batch_length", f"header says {header.batch_length}, data is {len(data)}"
        )
    if header.batch_hash != batch_hash(data):
        raise InvalidCheckpoint(seq, None, "batch_hash", "batchHash is not the data's chunk hash")
    if header.record_count != len(checkpoint.records):
        raise InvalidCheckpoint(
            seq,
            None,
            "record_count",
            f"header says {header.record_count}, data holds {len(checkpoint.records)}",
        )
    if trace_tree(checkpoint.records, checkpoint.roots_after).root != header.trace_root:
        raise InvalidCheckpoint(seq, None, "trace_root", "traceRoot is not the data's trace")


def replay(ledger: Ledger, checkpoint: PostedCheckpoint) -> PostedCheckpoint:
    """Re-executes one checkpoint's batch on ``ledger`` and returns the checkpoint with the
    withdrawal leaves it appended to the global withdrawals tree, after checking everything the
    batch data proves: the header's commitments (``check_commitments``), that the rules accept
    every record (the only no-ops a batch may carry are the forced requests the ledger serves as
    no-ops, and DepositRejected), that the ledger reaches every published ``stateRootAfter_i``, the
    final state root and the withdrawal fields (the exchange leaf's root, count and total).

    Raises InvalidCheckpoint naming the first bad record; ``ledger`` then holds the state after
    the records before it (rebuild a fresh one to go on)."""
    check_commitments(checkpoint)
    seq = checkpoint.header.seq
    first = ledger.exchange.withdrawal_count
    slots: list[int | None] = []
    for i, (t, root_after) in enumerate(
        zip(checkpoint.transitions, checkpoint.roots_after, strict=True)
    ):
        before = ledger.exchange.withdrawal_count
        try:
            ledger.apply(t)
        except TransitionRejected as exc:
            raise InvalidCheckpoint(seq, i, exc.reason, exc.message) from exc
        if ledger.state_root != root_after:
            raise InvalidCheckpoint(
                seq,
                i,
                "root_mismatch",
                f"re-executed root 0x{ledger.state_root.hex()} != published 0x{root_after.hex()}",
            )
        slots.append(before if ledger.exchange.withdrawal_count > before else None)
    if ledger.state_root != checkpoint.header.state_root:
        raise InvalidCheckpoint(
            seq,
            None,
            "root_mismatch",
            f"re-executed root 0x{ledger.state_root.hex()} "
            f"!= posted 0x{checkpoint.header.state_root.hex()}",
        )
    ex, header = ledger.exchange, checkpoint.header
    if (ex.withdrawals_root, ex.withdrawal_count, ex.withdrawal_total) != (
        header.withdrawals_root,
        header.withdrawal_count,
        header.withdrawal_total,
    ):
        raise InvalidCheckpoint(
            seq,
            None,
            "withdrawals_mismatch",
            "withdrawals root, count or total do not match the state's exchange leaf",
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
