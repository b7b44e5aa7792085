"""The chain watcher: the exchange's L1 events (deposits, forced requests, checkpoints) read
incrementally over bounded block ranges, and kept consistent across reorgs.

Each ``poll`` first checks that the last block it scanned is still canonical (one
``eth_getBlockByNumber``: block hashes chain, so if the tip it scanned is unchanged, so is every
block before it). If not, it walks back through the hashes it remembers to the fork point, drops
every event above it (reported in ``Reorg``) and scans again from there; a reorg deeper than its
memory (``history`` blocks) drops everything and rescans from the deployment block. Logs come from
one ``eth_getLogs`` per range of at most ``log_range`` blocks over both contracts; a log marked
``removed`` retracts the event it names. A reorg that happens while a poll is scanning is caught by
re-reading the tip at the end: that poll's events are discarded and the next poll starts over.

Queues are dense: deposit and forced-request indices, checkpoint seqs follow each other without gaps
in canonical order, so a missing event is an error (``gap``), not silently skipped.

A ``CheckpointsInvalidated`` event (the dispute contract proved a checkpoint wrong) is reported in
``WatchUpdate.invalidations`` and logged as an error; the watcher does not act on it: what the
operator does then (roll back or stop) is the fraud-proof issue's decision. The checkpoint list is
left as it was, so a checkpoint later posted again under an invalidated seq is a ``gap`` error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eth_utils import event_abi_to_log_topic
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import BlockNotFound

from isoperp.chain.events import CheckpointLog, InvalidationLog, QueuedDeposit, QueuedForced
from isoperp.errors import ProtocolError

logger = logging.getLogger(__name__)

LOG_RANGE = 2_000  # blocks per eth_getLogs call (public RPCs commonly cap ranges at 2k-10k)
HISTORY = 256  # block hashes remembered for finding a fork point

Event = QueuedDeposit | QueuedForced | CheckpointLog | InvalidationLog


@dataclass(frozen=True, slots=True)
class Reorg:
    """Blocks above ``fork_block`` were replaced; what the watcher had seen there is dropped."""

    fork_block: int
    deposits: tuple[QueuedDeposit, ...]
    forced: tuple[QueuedForced, ...]
    checkpoints: tuple[CheckpointLog, ...]
    invalidations: tuple[InvalidationLog, ...] = ()

    @property
    def checkpoint_seqs(self) -> tuple[int, ...]:
        return tuple(c.seq for c in self.checkpoints)


@dataclass
class WatchUpdate:
    """What one poll found: an optional reorg (applied first), then new canonical events."""

    head: int
    reorg: Reorg | None = None
    deposits: list[QueuedDeposit] = field(default_factory=list)
    forced: list[QueuedForced] = field(default_factory=list)
    checkpoints: list[CheckpointLog] = field(default_factory=list)
    invalidations: list[InvalidationLog] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.reorg is None and not (
            self.deposits or self.forced or self.checkpoints or self.invalidations
        )


class ChainWatcher:
    """Follows the Deposited, ForcedRequested, CheckpointPosted and CheckpointsInvalidated events
    of one deployment.

    ``deposits``, ``forced`` and ``checkpoints`` always hold the canonical events seen so far, in
    queue order (list position == index, seq - 1). It follows the head itself: the operator must
    chain each checkpoint on the newest one, so it sees everything at once and undoes what a reorg
    takes away (``Reorg``)."""

    def __init__(
        self,
        w3: Web3,
        vault: Contract,
        settlement: Contract,
        hatch: Contract,
        deploy_block: int,
        *,
        log_range: int = LOG_RANGE,
        history: int = HISTORY,
    ) -> None:
        if log_range < 1 or history < 1:
            raise ValueError("log_range and history must be >= 1")
        self.w3 = w3
        self.deploy_block = deploy_block
        self.log_range = log_range
        self.history = history
        self.deposits: list[QueuedDeposit] = []
        self.forced: list[QueuedForced] = []
        self.checkpoints: list[CheckpointLog] = []
        self.invalidations: list[InvalidationLog] = []
        self.cursor = deploy_block - 1  # last block scanned
        self._hashes: dict[int, bytes] = {}  # block number -> hash, for blocks scanned
        self._addresses = [vault.address, settlement.address, hatch.address]
        self._decoders: dict[bytes, Callable[[dict[str, Any]], Event]] = {}
        for contract, name, build in (
            (vault, "Deposited", QueuedDeposit.from_log),
            (hatch, "ForcedRequested", QueuedForced.from_log),
            (settlement, "CheckpointPosted", CheckpointLog.from_log),
            (settlement, "CheckpointsInvalidated", InvalidationLog.from_log),
        ):
            event = contract.events[name]()
            topic = event_abi_to_log_topic(event.abi)
            self._decoders[topic] = _decoder(event, build)

    @classmethod
    def for_system(cls, system: Any, **kwargs: Any) -> ChainWatcher:
        """A watcher of ``system`` (an ``isoperp.chain.contracts.System``)."""
        return cls(
            system.client.w3,
            system.vault,
            system.settlement,
            system.hatch,
            system.deployment.deploy_block,
            **kwargs,
        )

    # -- polling ---------------------------------------------------------------------------------

    def poll(self) -> WatchUpdate:
        """Brings the watcher up to the chain's head."""
        reorg = self._check_reorg()
        latest = self.w3.eth.get_block("latest")
        target, target_hash = int(latest["number"]), bytes(latest["hash"])
        update = WatchUpdate(head=target, reorg=reorg)
        if target <= self.cursor:
            return update
        found: list[Event] = []
        retracted: list[Event] = []
        start = self.cursor + 1
        while start <= target:
            end = min(start + self.log_range - 1, target)
            logs = self.w3.eth.get_logs(
                {
                    "address": self._addresses,
                    "fromBlock": start,
                    "toBlock": end,
                    "topics": [[HexBytes(t) for t in self._decoders]],
                }
            )
            found = self._merge(found, retracted, logs)
            start = end + 1
        adopted = {e.log_id for e in self._events()}
        stale = [e.block for e in retracted if e.log_id in adopted]
        if stale:  # a log we adopted earlier was removed: its block is no longer canonical
            update.reorg = _combine(reorg, self.rewind(min(stale) - 1))
            return update
        if self._block_hash(target) != target_hash:
            logger.warning("the chain reorganised during a scan up to block %d; rescanning", target)
            return update  # nothing adopted: the next poll finds the fork and scans again
        for event in found:
            self._adopt(event)
            getattr(update, _KIND[type(event)]).append(event)
            self._hashes[event.block] = event.block_hash
        self._hashes[target] = target_hash
        self.cursor = target
        self._trim()
        return update

    def _merge(self, found: list[Event], retracted: list[Event], logs: Any) -> list[Event]:
        for log in logs:
            decode = self._decoders.get(bytes(log["topics"][0])) if log["topics"] else None
            if decode is None:
                continue
            event = decode(log)
            if log.get("removed"):
                found = [e for e in found if e.log_id != event.log_id]
                retracted.append(event)
            else:
                found.append(event)
        return found

    def _events(self) -> list[Event]:
        return [*self.deposits, *self.forced, *self.checkpoints, *self.invalidations]

    def _adopt(self, event: Event) -> None:
        if isinstance(event, InvalidationLog):
            if any(e.log_id == event.log_id for e in self.invalidations):
                return  # already seen (a range scanned twice)
            self.invalidations.append(event)
            logger.error(
                "checkpoints #%d..#%d were INVALIDATED by the dispute contract (block %d): the "
                "Settlement's chain now ends at #%d; the operator does not handle invalidations "
                "yet and keeps its own chain",
                event.from_seq,
                event.previous_latest,
                event.block,
                event.from_seq - 1,
            )
            return
        queue: list[Any] = getattr(self, _KIND[type(event)])
        position = event.seq - 1 if isinstance(event, CheckpointLog) else event.index
        if position < len(queue):
            if queue[position].log_id == event.log_id:
                return  # already seen (a range scanned twice)
            raise ProtocolError(
                f"{_KIND[type(event)]} {position} seen twice in different transactions",
                code="gap",
            )
        if position != len(queue):
            raise ProtocolError(
                f"{_KIND[type(event)]} {len(queue)} missing from the logs before {position}",
                code="gap",
            )
        queue.append(event)

    # -- reorgs ----------------------------------------------------------------------------------

    def _block_hash(self, number: int) -> bytes:
        """The canonical hash at ``number``; empty if the chain is now shorter (rolled back)."""
        try:
            return bytes(self.w3.eth.get_block(number)["hash"])
        except BlockNotFound:
            return b""

    def _check_reorg(self) -> Reorg | None:
        if self.cursor < self.deploy_block or self._block_hash(self.cursor) == self._hashes.get(
            self.cursor
        ):
            return None
        fork = self.deploy_block - 1
        for number in sorted(self._hashes, reverse=True):
            if number < self.cursor and self._block_hash(number) == self._hashes[number]:
                fork = number
                break
        else:
            logger.warning("reorg deeper than the %d remembered blocks: rescanning", self.history)
        return self.rewind(fork)

    def rewind(self, fork_block: int) -> Reorg:
        """Forgets everything above ``fork_block`` (which must be canonical) and returns what was
        dropped; the next poll scans from ``fork_block + 1``."""
        fork_block = max(fork_block, self.deploy_block - 1)
        reorg = Reorg(
            fork_block,
            tuple(d for d in self.deposits if d.block > fork_block),
            tuple(f for f in self.forced if f.block > fork_block),
            tuple(c for c in self.checkpoints if c.block > fork_block),
            tuple(i for i in self.invalidations if i.block > fork_block),
        )
        self.deposits = [d for d in self.deposits if d.block <= fork_block]
        self.forced = [f for f in self.forced if f.block <= fork_block]
        self.checkpoints = [c for c in self.checkpoints if c.block <= fork_block]
        self.invalidations = [i for i in self.invalidations if i.block <= fork_block]
        self._hashes = {n: h for n, h in self._hashes.items() if n <= fork_block}
        self.cursor = min(self.cursor, fork_block)
        logger.warning(
            "chain reorganised above block %d: dropped %d deposit(s), %d forced request(s), "
            "checkpoint(s) %s",
            fork_block,
            len(reorg.deposits),
            len(reorg.forced),
            list(reorg.checkpoint_seqs) or "none",
        )
        return reorg

    def _trim(self) -> None:
        if len(self._hashes) > self.history:
            for number in sorted(self._hashes)[: len(self._hashes) - self.history]:
                del self._hashes[number]


def _combine(first: Reorg | None, second: Reorg) -> Reorg:
    if first is None:
        return second
    return Reorg(
        min(first.fork_block, second.fork_block),
        first.deposits + second.deposits,
        first.forced + second.forced,
        first.checkpoints + second.checkpoints,
        first.invalidations + second.invalidations,
    )


_KIND: dict[type, str] = {
    QueuedDeposit: "deposits",
    QueuedForced: "forced",
    CheckpointLog: "checkpoints",
    InvalidationLog: "invalidations",
}


def _decoder(event: Any, build: Callable[[Any], Event]) -> Callable[[dict[str, Any]], Event]:
    def decode(log: dict[str, Any]) -> Event:
        return build(event.process_log(log))

    return decode
