"""One operator cycle: catch up from L1, batch new deposits and inbox requests, post the checkpoint.

The operator keeps no private state it cannot rebuild: its ledger is the replay of every posted
checkpoint's batch data (read back from L1), so a restart loses nothing that was posted, and the
inbox holds what was acknowledged but not yet posted. Posting is idempotent: before building, the
cycle re-reads the chain, so a checkpoint that landed before a crash is replayed, not posted
again."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from isoperp.batch.builder import BatchBuilder, BatchFull, SealedBatch
from isoperp.chain.contracts import System
from isoperp.chain.l1 import (
    PostedCheckpoint,
    genesis_ledger,
    latest_header,
    read_checkpoints,
    read_deposits,
    replay,
)
from isoperp.errors import ProtocolError, TransitionRejected
from isoperp.ledger.ledger import Ledger
from isoperp.ledger.transitions import Deposit, MarginTransfer, Withdraw
from isoperp.service.inbox import Inbox

logger = logging.getLogger(__name__)


@dataclass
class CycleReport:
    """What one cycle did."""

    posted: SealedBatch | None = None
    gas_used: int = 0
    tx_hash: str = ""
    deposits: int = 0
    requests: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)


class OperatorService:
    """Builds and posts checkpoints for one deployment."""

    def __init__(self, system: System, inbox: Inbox) -> None:
        self.system = system
        self.inbox = inbox
        self.ledger: Ledger = genesis_ledger(system)
        self.checkpoints: list[PostedCheckpoint] = []

    def sync(self) -> None:
        """Replays checkpoints posted since the last sync (all of them on the first call)."""
        next_seq = self.checkpoints[-1].header.seq + 1 if self.checkpoints else 1
        new = read_checkpoints(self.system, from_seq=next_seq)
        for cp in new:
            replay(self.ledger, cp)
            self.checkpoints.append(cp)
        if new:
            self._reconcile(new)

    def _reconcile(self, new: list[PostedCheckpoint]) -> None:
        """Marks pending inbox requests that L1 shows as already included (a crash between posting
        and marking them) as included, so they are neither posted twice nor reported rejected."""
        on_chain: dict[tuple[int, int, bytes], tuple[int, int | None]] = {}
        for cp in new:
            slot = 0
            for t in cp.transitions:
                if isinstance(t, Withdraw | MarginTransfer):
                    on_chain[(t.account_id, t.nonce, t.signature)] = (
                        cp.header.seq,
                        slot if isinstance(t, Withdraw) else None,
                    )
                if isinstance(t, Withdraw):
                    slot += 1
        found = []
        for entry in self.inbox.pending():
            r = entry.request
            hit = on_chain.get((r.account_id, r.nonce, r.signature))
            if hit is not None:
                found.append((entry.id, hit[0], hit[1]))
        if found:
            logger.info("%d inbox requests were already on L1; marked included", len(found))
            self.inbox.mark_included(found)

    def run_once(self, *, post_empty: bool = False) -> CycleReport:
        """Syncs, then posts one checkpoint if there is anything to include (or ``post_empty``)."""
        self.sync()
        report = CycleReport()
        previous = latest_header(self.system, self.checkpoints)
        work = self.ledger.copy()
        builder = BatchBuilder(work, previous)
        self._add_deposits(builder, work, previous.deposit_cursor, report)
        included = self._add_requests(builder, report)
        if not len(builder) and not post_empty:
            logger.info("nothing to post")
            return report
        timestamp = int(self.system.client.w3.eth.get_block("latest")["timestamp"])
        sealed = builder.seal(timestamp=timestamp)
        receipt = self.system.client.transact(
            self.system.settlement.functions.postCheckpoint(
                sealed.header.as_abi_tuple(), sealed.data
            ),
            context=f"postCheckpoint #{sealed.header.seq}",
        )
        report.posted = sealed
        report.gas_used = int(receipt["gasUsed"])
        report.tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
        self.inbox.mark_included([(rid, sealed.header.seq, slot) for rid, slot in included])
        self.sync()  # adopt the posted checkpoint exactly as L1 has it
        if self.ledger.state_root != sealed.header.state_root:
            raise ProtocolError("posted checkpoint did not replay to its own root", code="diverged")
        logger.info(
            "posted checkpoint %d: %d transitions, %d bytes, gas %d",
            sealed.header.seq,
            len(sealed.transitions),
            len(sealed.data),
            report.gas_used,
        )
        return report

    def _add_deposits(
        self, builder: BatchBuilder, work: Ledger, cursor: int, report: CycleReport
    ) -> None:
        for d in read_deposits(self.system, from_index=cursor):
            existing = work.account_id_of(d.owner)
            account_id = existing if existing is not None else work.exchange.next_account_id
            try:
                builder.add(Deposit(d.index, account_id, d.owner, d.amount, d.timestamp))
            except BatchFull:
                logger.info("batch full; deposit %d waits for the next checkpoint", d.index)
                return
            report.deposits += 1

    def _add_requests(
        self, builder: BatchBuilder, report: CycleReport
    ) -> list[tuple[int, int | None]]:
        included: list[tuple[int, int | None]] = []
        withdrawals = 0
        for entry in self.inbox.pending():
            try:
                builder.add(entry.request)
            except BatchFull:
                break
            except TransitionRejected as exc:
                logger.info("request %d rejected: %s", entry.id, exc.message)
                self.inbox.mark_rejected(entry.id, exc.reason)
                report.rejected.append((entry.id, exc.reason))
                continue
            slot = None
            if isinstance(entry.request, Withdraw):
                slot = withdrawals
                withdrawals += 1
            included.append((entry.id, slot))
            report.requests += 1
        return included
