"""Reading the exchange from L1 alone: deposits from the vault's events, checkpoints and their batch
data from the calldata of the posting transactions. This is what lets anyone (the operator after a
crash, a user whose operator vanished, an auditor) rebuild the state without the operator.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from web3.contract.contract import ContractEvent

from isoperp.batch.builder import withdrawal_leaf, withdrawals_tree
from isoperp.chain.contracts import System
from isoperp.errors import ProtocolError
from isoperp.ledger.ledger import Ledger
from isoperp.ledger.markets import DEVNET_MARKETS, DEVNET_ORACLE
from isoperp.ledger.transitions import Transition
from isoperp.protocol.batch import decode_batch
from isoperp.protocol.header import CheckpointHeader, WithdrawalLeaf

logger = logging.getLogger(__name__)

LOG_RANGE = 2_000  # blocks per eth_getLogs call


@dataclass(frozen=True, slots=True)
class QueuedDeposit:
    index: int
    owner: str
    depositor: str
    amount: int
    timestamp: int
    prefix_hash: bytes
    block: int


@dataclass(frozen=True, slots=True)
class QueuedForced:
    """An entry of the Settlement's forced-request queue (its ForcedRequested event)."""

    index: int
    kind: int  # 1 withdrawal, 2 exit
    requester: str
    account_id: int
    market_id: int
    amount: int
    timestamp: int
    prefix_hash: bytes


@dataclass(frozen=True, slots=True)
class PostedCheckpoint:
    """A checkpoint as L1 has it. ``withdrawals`` and ``slots`` (the withdrawals-tree slot each
    transition filled, or None) are known once the batch was replayed (``replay``): forced payouts
    depend on the state, not only on the records."""

    header: CheckpointHeader
    data: bytes
    transitions: tuple[Transition, ...]
    tx_hash: str
    block: int
    finalizes_at: int
    withdrawals: tuple[WithdrawalLeaf, ...] = ()
    slots: tuple[int | None, ...] = ()


def iter_logs(
    event: type[ContractEvent] | ContractEvent, from_block: int, to_block: int
) -> Iterator[Any]:
    """Logs of ``event`` in [from_block, to_block], fetched in bounded ranges."""
    start = from_block
    while start <= to_block:
        end = min(start + LOG_RANGE - 1, to_block)
        yield from event.get_logs(from_block=start, to_block=end)
        start = end + 1


def read_deposits(system: System, *, from_index: int = 0) -> list[QueuedDeposit]:
    """Deposits with queue index >= ``from_index``, in queue order."""
    head = system.client.w3.eth.block_number
    out = []
    for log in iter_logs(system.vault.events.Deposited, system.deployment.deploy_block, head):
        a = log["args"]
        if a["index"] < from_index:
            continue
        out.append(
            QueuedDeposit(
                a["index"],
                a["owner"],
                a["depositor"],
                a["amount"],
                a["timestamp"],
                bytes(a["prefixHash"]),
                log["blockNumber"],
            )
        )
    out.sort(key=lambda d: d.index)
    for expected, d in enumerate(out, start=from_index):
        if d.index != expected:
            raise ProtocolError(f"deposit {expected} missing from the vault's logs", code="gap")
    return out


def read_forced_requests(system: System, *, from_index: int = 0) -> list[QueuedForced]:
    """Forced requests with queue index >= ``from_index``, in queue order."""
    head = system.client.w3.eth.block_number
    out = []
    event = system.settlement.events.ForcedRequested
    for log in iter_logs(event, system.deployment.deploy_block, head):
        a = log["args"]
        if a["index"] < from_index:
            continue
        out.append(
            QueuedForced(
                a["index"],
                a["kind"],
                a["requester"],
                a["accountId"],
                a["marketId"],
                a["amount"],
                a["timestamp"],
                bytes(a["prefixHash"]),
            )
        )
    out.sort(key=lambda f: f.index)
    for expected, f in enumerate(out, start=from_index):
        if f.index != expected:
            raise ProtocolError(f"forced request {expected} missing from the logs", code="gap")
    return out


def read_checkpoints(system: System, *, from_seq: int = 1) -> list[PostedCheckpoint]:
    """Posted checkpoints with seq >= ``from_seq``, header and batch data decoded from calldata."""
    w3 = system.client.w3
    head = w3.eth.block_number
    settlement = system.settlement
    out = []
    logs = iter_logs(settlement.events.CheckpointPosted, system.deployment.deploy_block, head)
    for log in logs:
        seq = log["args"]["seq"]
        if seq < from_seq:
            continue
        tx = w3.eth.get_transaction(log["transactionHash"])
        fn, params = settlement.decode_function_input(tx["input"])
        if fn.fn_name != "postCheckpoint":
            raise ProtocolError(
                f"checkpoint {seq} was not posted by a direct postCheckpoint call", code="calldata"
            )
        raw = params["header"]
        header = CheckpointHeader(*(raw.values() if isinstance(raw, dict) else raw))
        if header.hash != bytes(log["args"]["checkpointHash"]):
            raise ProtocolError(
                f"checkpoint {seq}: calldata does not match the event", code="calldata"
            )
        data = bytes(params["batchData"])
        out.append(
            PostedCheckpoint(
                header=header,
                data=data,
                transitions=tuple(decode_batch(data)),
                tx_hash="0x" + bytes(log["transactionHash"]).hex(),
                block=log["blockNumber"],
                finalizes_at=log["args"]["finalizesAt"],
            )
        )
    out.sort(key=lambda c: c.header.seq)
    return out


def genesis_ledger(system: System) -> Ledger:
    oracle = system.deployment.oracle or DEVNET_ORACLE
    ledger = Ledger.genesis(DEVNET_MARKETS, system.domain, oracle)
    expected = system.deployment.genesis_state_root
    if "0x" + ledger.state_root.hex() != expected:
        raise ProtocolError(
            "the devnet markets do not reproduce the deployment's genesis root", code="genesis"
        )
    return ledger


def replay(ledger: Ledger, checkpoint: PostedCheckpoint) -> PostedCheckpoint:
    """Re-executes one checkpoint's batch on ``ledger``, checks the posted state root and the
    withdrawals root, and returns the checkpoint with its withdrawal leaves."""
    leaves: list[WithdrawalLeaf] = []
    slots: list[int | None] = []
    for t in checkpoint.transitions:
        leaf = withdrawal_leaf(t, ledger.apply(t))
        slots.append(None if leaf is None else len(leaves))
        if leaf is not None:
            leaves.append(leaf)
    if ledger.state_root != checkpoint.header.state_root:
        raise ProtocolError(
            f"checkpoint {checkpoint.header.seq}: re-executed root 0x{ledger.state_root.hex()} "
            f"!= posted 0x{checkpoint.header.state_root.hex()}",
            code="root_mismatch",
        )
    if withdrawals_tree(leaves).root != checkpoint.header.withdrawals_root:
        raise ProtocolError(
            f"checkpoint {checkpoint.header.seq}: withdrawals root does not match its batch",
            code="withdrawals_mismatch",
        )
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
