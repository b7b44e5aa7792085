"""The exchange's L1 events as typed records: a deposit of the vault's queue, a forced request of
the Settlement's queue, a posted checkpoint. Each knows the block (number and hash) and the log it
came from, so the chain watcher can drop it when its block is reorganised away."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LogId = tuple[bytes, int]  # (transaction hash, log index)


def _origin(log: Any) -> tuple[int, bytes, LogId]:
    tx_hash = bytes(log["transactionHash"])
    return int(log["blockNumber"]), bytes(log["blockHash"]), (tx_hash, int(log["logIndex"]))


@dataclass(frozen=True, slots=True)
class QueuedDeposit:
    """An entry of the vault's deposit queue (its Deposited event)."""

    index: int
    owner: str
    depositor: str
    amount: int
    timestamp: int
    prefix_hash: bytes
    block: int
    block_hash: bytes = b""
    log_id: LogId = (b"", 0)

    @classmethod
    def from_log(cls, log: Any) -> QueuedDeposit:
        a = log["args"]
        block, block_hash, log_id = _origin(log)
        return cls(
            a["index"],
            a["owner"],
            a["depositor"],
            a["amount"],
            a["timestamp"],
            bytes(a["prefixHash"]),
            block,
            block_hash,
            log_id,
        )


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
    block: int = 0
    block_hash: bytes = b""
    log_id: LogId = (b"", 0)

    @classmethod
    def from_log(cls, log: Any) -> QueuedForced:
        a = log["args"]
        block, block_hash, log_id = _origin(log)
        return cls(
            a["index"],
            a["kind"],
            a["requester"],
            a["accountId"],
            a["marketId"],
            a["amount"],
            a["timestamp"],
            bytes(a["prefixHash"]),
            block,
            block_hash,
            log_id,
        )


@dataclass(frozen=True, slots=True)
class CheckpointLog:
    """A CheckpointPosted event; the header and batch data are in the posting transaction's
    calldata (``isoperp.chain.l1.read_posted``)."""

    seq: int
    checkpoint_hash: bytes
    finalizes_at: int
    block: int
    block_hash: bytes
    log_id: LogId

    @property
    def tx_hash(self) -> bytes:
        return self.log_id[0]

    @classmethod
    def from_log(cls, log: Any) -> CheckpointLog:
        a = log["args"]
        block, block_hash, log_id = _origin(log)
        return cls(
            a["seq"], bytes(a["checkpointHash"]), a["finalizesAt"], block, block_hash, log_id
        )


@dataclass(frozen=True, slots=True)
class InvalidationLog:
    """A CheckpointsInvalidated event: the dispute contract invalidated checkpoints
    ``from_seq .. previous_latest``; the Settlement's chain continues from ``from_seq - 1``."""

    from_seq: int
    previous_latest: int
    block: int
    block_hash: bytes
    log_id: LogId

    @classmethod
    def from_log(cls, log: Any) -> InvalidationLog:
        a = log["args"]
        block, block_hash, log_id = _origin(log)
        return cls(a["fromSeq"], a["previousLatest"], block, block_hash, log_id)
