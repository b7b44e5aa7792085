"""One operator cycle: catch up from L1, batch new deposits and inbox requests, post the checkpoint.

The operator keeps no private state it cannot rebuild: its ledger is the replay of every posted
checkpoint's batch data (read back from L1), so a restart loses nothing that was posted, and the
inbox holds what was acknowledged but not yet posted. Posting is idempotent: before building, the
cycle re-reads the chain, so a checkpoint that landed before a crash is replayed, not posted
again.

The chain is followed by a ``ChainWatcher`` (incremental, bounded log ranges). When a reorg takes
checkpoints off the chain, the ledger goes back to the newest one left (a kept snapshot, else a
replay from genesis), the journal undoes what it decided on the dropped ones (their requests are
pending again and go into the next checkpoint), and the signer's nonce is re-read. If a dropped
checkpoint's transaction is back in the mempool, the operator waits for it instead of building a
rival."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from hexbytes import HexBytes
from web3.exceptions import TransactionNotFound

from isoperp.batch.builder import BatchBuilder, BatchFull, SealedBatch
from isoperp.chain.contracts import System
from isoperp.chain.l1 import (
    PostedCheckpoint,
    genesis_ledger,
    latest_header,
    read_posted,
    replay,
)
from isoperp.chain.watcher import ChainWatcher, Reorg
from isoperp.errors import ProtocolError, TransitionRejected
from isoperp.exchange.engine import Engine, LiquidationReport
from isoperp.ledger.ledger import Ledger
from isoperp.ledger.transitions import (
    Backstop,
    CancelOrder,
    Deleverage,
    Deposit,
    DepositRejected,
    FeeCollect,
    ForcedExit,
    ForcedWithdraw,
    Liquidate,
    MarginTransfer,
    PlaceOrder,
    PriceUpdate,
    Withdraw,
)
from isoperp.matching import OrderKey
from isoperp.protocol.constants import ORDER_SLOTS
from isoperp.service.inbox import Inbox, InboxEntry

FORCED_WITHDRAWAL = 1  # queue entry kinds of the Settlement contract (2: forced exit)
FEE_THRESHOLD = 1_000 * 10**6  # collect fees once the fee balance exceeds 1,000 USDC
UNCREDITABLE = ("accounts_full", "collateral_overflow")  # deposits refunded by DEPOSIT_REJECTED
FUNDING_INTERVAL = 60  # seconds between FUNDING records per market (dYdX: hourly)
SNAPSHOTS = 8  # ledgers kept for the newest checkpoints (a shallow reorg needs no replay)
UNDO_CHECKPOINTS = 1_024  # checkpoints whose journal changes stay undoable
# (journal id, status, reason, checkpoint seq, withdrawal slot, filled size); None keeps the stored
JournalChange = tuple[int, str, str | None, int | None, int | None, int | None]

logger = logging.getLogger(__name__)


@dataclass
class CycleReport:
    """What one cycle did."""

    posted: SealedBatch | None = None
    deferred: bool = False  # work was there, but below the cadence's fill count: not posted yet
    fills: int = 0
    gas_used: int = 0
    tx_hash: str = ""
    deposits: int = 0
    deposits_rejected: int = 0  # refunded with DEPOSIT_REJECTED (counted in ``deposits`` too)
    fees_collected: int = 0  # FEE_COLLECT amount (micro-USDC)
    forced: int = 0
    requests: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    liquidations: list[Liquidate] = field(default_factory=list)
    backstops: list[Backstop] = field(default_factory=list)
    deleverages: list[Deleverage] = field(default_factory=list)


class OperatorService:
    """Builds and posts checkpoints for one deployment."""

    def __init__(
        self,
        system: System,
        inbox: Inbox,
        *,
        serve_forced: bool = True,
        censor_deposits_from: int | None = None,
        watcher: ChainWatcher | None = None,
        fee_threshold: int = FEE_THRESHOLD,
    ) -> None:
        if fee_threshold < 0:
            raise ValueError(f"fee_threshold must be >= 0, got {fee_threshold}")
        self.system = system
        self.inbox = inbox
        self.serve_forced = serve_forced  # False only in drills: an operator that censors
        # Only in drills: an operator that never includes deposit #n (nor any after it, since
        # deposits are included in queue order) but keeps posting everything else.
        self.censor_deposits_from = censor_deposits_from
        self.fee_threshold = fee_threshold  # FEE_COLLECT once the fee balance exceeds it
        self.watcher = watcher or ChainWatcher.for_system(system)
        self.ledger: Ledger = genesis_ledger(system)
        self.checkpoints: list[PostedCheckpoint] = []
        self.reorgs = 0
        self._snapshots: dict[int, Ledger] = {0: self.ledger}  # seq -> ledger after it
        self._awaiting: list[bytes] = []  # dropped checkpoint txs that may be mined again

    def sync(self) -> None:
        """Follows the chain: undoes what a reorg took away, then replays checkpoints posted since
        the last sync (all of them on the first call). The replay runs on a copy that then replaces
        ``ledger`` and ``checkpoints`` in one step, so a reader in another thread (the API) never
        sees a half-applied batch."""
        first_sync = self.watcher.cursor < self.watcher.deploy_block
        update = self.watcher.poll()
        if update.reorg is not None and update.reorg.checkpoints:
            self._roll_back(update.reorg)
        if first_sync:
            self._undo_beyond_chain()
        logs = self.watcher.checkpoints[len(self.checkpoints) :]
        if not logs:
            return
        ledger = self.ledger.copy()
        new = [replay(ledger, read_posted(self.system, log)) for log in logs]
        self.ledger, self.checkpoints = ledger, [*self.checkpoints, *new]
        last = new[-1].header.seq
        self._snapshots[last] = ledger
        for seq in [q for q in self._snapshots if q <= last - SNAPSHOTS and q != 0]:
            del self._snapshots[seq]
        self._reconcile(new)

    def _roll_back(self, reorg: Reorg) -> None:
        """The chain no longer holds checkpoints ``reorg.checkpoints``: back to the newest one it
        still has, in the ledger and in the journal."""
        first = min(reorg.checkpoint_seqs)
        keep = [cp for cp in self.checkpoints if cp.header.seq < first]
        ledger = self._snapshots.get(first - 1)
        if ledger is None:
            ledger = genesis_ledger(self.system)
            keep = [replay(ledger, cp) for cp in keep]
        self._snapshots = {q: led for q, led in self._snapshots.items() if q < first}
        self._snapshots[first - 1] = ledger
        self.ledger, self.checkpoints = ledger, keep
        restored = self.inbox.rollback(first)
        self.system.client.resync_nonce()
        self._awaiting = [c.tx_hash for c in reorg.checkpoints]
        self.reorgs += 1
        logger.warning(
            "reorg: checkpoint(s) %s left the chain; ledger back at #%d, %d journal change(s) "
            "undone",
            list(reorg.checkpoint_seqs),
            first - 1,
            restored,
        )

    def _undo_beyond_chain(self) -> None:
        """At start: journal changes decided on checkpoints the chain does not hold (a reorg while
        the operator was down, or a crash in the middle of a rollback) are undone, so their
        requests are posted again instead of staying "included" in a checkpoint that is gone."""
        restored = self.inbox.rollback(len(self.watcher.checkpoints) + 1)
        if restored:
            logger.warning(
                "the chain ends at checkpoint #%d: %d journal change(s) decided on later ones "
                "undone",
                len(self.watcher.checkpoints),
                restored,
            )

    def _rival_pending(self) -> bool:
        """Whether a checkpoint transaction that a reorg dropped is back in the mempool: building
        a new checkpoint now would race it (same seq), so the cycle waits for it to be mined."""
        waiting = []
        for tx_hash in self._awaiting:
            try:
                tx = self.system.client.w3.eth.get_transaction(HexBytes(tx_hash))
            except TransactionNotFound:
                continue
            if tx.get("blockNumber") is None:
                waiting.append(tx_hash)
        self._awaiting = waiting
        if waiting:
            logger.info("waiting for %d re-queued checkpoint transaction(s)", len(waiting))
        return bool(waiting)

    def _reconcile(self, new: list[PostedCheckpoint]) -> None:
        """After a crash between posting a checkpoint and updating the journal, pending entries
        that L1 already holds are marked as L1 has them, so nothing is posted twice or reported
        rejected: signed requests by (account, nonce, signature); orders and cancels by their
        order slot; oracle prices by the market's mark time."""
        on_chain: dict[tuple[int, int, bytes], tuple[int, int | None]] = {}
        for cp in new:
            for t, slot in zip(cp.transitions, cp.slots, strict=True):
                if isinstance(t, Withdraw | MarginTransfer):
                    on_chain[(t.account_id, t.nonce, t.signature)] = (cp.header.seq, slot)
        found: list[JournalChange] = []
        for entry in self.inbox.pending():
            change = self._on_chain_status(entry, on_chain)
            if change is not None:
                found.append(change)
        if found:
            logger.info("%d journal entries were already on L1; marked as L1 has them", len(found))
            self.inbox.update(found, base_seq=new[-1].header.seq)

    def _on_chain_status(
        self, entry: InboxEntry, on_chain: dict[tuple[int, int, bytes], tuple[int, int | None]]
    ) -> JournalChange | None:
        r = entry.request
        if isinstance(r, Withdraw | MarginTransfer):
            hit = on_chain.get((r.account_id, r.nonce, r.signature))
            return None if hit is None else (entry.id, "included", None, hit[0], hit[1], None)
        if isinstance(r, PriceUpdate):
            market = self.ledger.market(r.market_id)
            seen = market is not None and market.mark_time >= r.timestamp
            return (entry.id, "included", None, None, None, None) if seen else None
        if isinstance(r, PlaceOrder | CancelOrder):
            leaf = self.ledger.order(r.account_id, r.nonce % ORDER_SLOTS)
            if leaf is None or leaf.nonce < r.nonce:
                return None  # not on L1: the order rests again / the cancel runs again
            if isinstance(r, CancelOrder):
                return (entry.id, "included", None, None, None, None)
            if leaf.nonce > r.nonce:
                return (entry.id, "cancelled", "slot_reused", None, None, None)
            if leaf.filled < leaf.size:
                return (entry.id, "open", None, None, None, leaf.filled)
            status = "filled" if leaf.filled >= r.size else "done"
            return (entry.id, status, None, None, None, leaf.filled)
        return None

    def run_once(self, *, post_empty: bool = False, min_fills: int = 0) -> CycleReport:
        """Syncs, then posts one checkpoint if there is anything to include (or ``post_empty``).

        ``min_fills`` (a cadence of "every N fills or T seconds", between the T-second cycles):
        post only if the batch holds at least that many fills, serves a forced request or is
        full; otherwise nothing is posted or journaled (``deferred``) and the next cycle rebuilds
        the batch from the same journal."""
        self.sync()
        report = CycleReport()
        if self._awaiting and self._rival_pending():
            return report
        previous = latest_header(self.system, self.checkpoints)
        work = self.ledger.copy()
        builder = BatchBuilder(work, previous)
        now = int(self.system.client.w3.eth.get_block("latest")["timestamp"])
        cycle = _Cycle(Engine(work, builder, self.system.domain, now=now))
        for entry in self.inbox.open_orders():
            cycle.restore(entry)
        # Forced requests first: a checkpoint that leaves one past its deadline is rejected
        # on-chain, so a deposit backlog must never crowd them out of a batch.
        if self.serve_forced:
            self._add_forced(builder, cycle, previous.forced_cursor, report)
        self._add_deposits(builder, work, previous.deposit_cursor, report)
        full = self._add_requests(cycle, report)
        cycle.finish(report)
        self._collect_fees(builder, work, report)
        report.fills = builder.fills
        if len(builder) and builder.fills < min_fills and not (report.forced or full):
            report.deferred = True
            return report
        if not len(builder) and not post_empty:
            self.inbox.update(cycle.journal_changes(seq=None), base_seq=previous.seq)
            logger.info("nothing to post")
            return report
        sealed = builder.seal(timestamp=now)
        receipt = self.system.client.transact(
            self.system.settlement.functions.postCheckpoint(
                sealed.header.as_abi_tuple(), sealed.data
            ),
            context=f"postCheckpoint #{sealed.header.seq}",
        )
        report.posted = sealed
        report.gas_used = int(receipt["gasUsed"])
        report.tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
        self.inbox.update(cycle.journal_changes(seq=sealed.header.seq), base_seq=sealed.header.seq)
        if sealed.header.seq % 64 == 0:
            self.inbox.forget_undo(sealed.header.seq - UNDO_CHECKPOINTS)
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
        """Takes the vault's queue in order from ``cursor``. A deposit that cannot be credited
        (no account id left, or the account cannot hold the amount) is refunded with
        DEPOSIT_REJECTED instead of stalling the queue."""
        for d in self.watcher.deposits[cursor:]:
            if self.censor_deposits_from is not None and d.index >= self.censor_deposits_from:
                return
            existing = work.account_id_of(d.owner)
            account_id = existing if existing is not None else work.exchange.next_account_id
            deposit = Deposit(d.index, account_id, d.owner, d.amount, d.timestamp)
            try:
                try:
                    builder.add(deposit)
                except TransitionRejected as exc:
                    if exc.reason not in UNCREDITABLE:
                        raise
                    builder.add(
                        DepositRejected(d.index, account_id, d.owner, d.amount, d.timestamp)
                    )
                    logger.warning("deposit %d refunded: %s", d.index, exc.message)
                    report.deposits_rejected += 1
            except BatchFull:
                logger.info("batch full; deposit %d waits for the next checkpoint", d.index)
                return
            report.deposits += 1

    def _collect_fees(self, builder: BatchBuilder, work: Ledger, report: CycleReport) -> None:
        """FEE_COLLECT of the whole fee balance once it exceeds ``fee_threshold`` (20% to the
        insurance fund, the rest to the operator through the withdrawals tree)."""
        balance = work.exchange.fee_balance
        if balance <= self.fee_threshold:
            return
        try:
            builder.add(FeeCollect(balance))
        except BatchFull:
            logger.info("batch full; fees are collected in the next checkpoint")
            return
        report.fees_collected = balance

    def _add_forced(
        self, builder: BatchBuilder, cycle: _Cycle, cursor: int, report: CycleReport
    ) -> None:
        """Serves the forced-request queue in order from ``cursor``: before anything else in the
        batch, since a checkpoint that leaves a request past its deadline is rejected on-chain.
        Invalid requests are served too (the ledger makes them no-ops)."""
        for f in self.watcher.forced[cursor:]:
            request: ForcedWithdraw | ForcedExit
            if f.kind == FORCED_WITHDRAWAL:
                request = ForcedWithdraw(f.index, f.account_id, f.requester, f.amount, f.timestamp)
            else:
                request = ForcedExit(f.index, f.account_id, f.market_id, f.requester, f.timestamp)
            try:
                result = builder.add(request)
            except BatchFull:
                logger.warning("batch full; forced request %d waits for the next one", f.index)
                return
            report.forced += 1
            if isinstance(request, ForcedExit) and not getattr(result, "noop", None):
                cycle.drop_orders(request.account_id, request.market_id, "forced_exit")

    def _add_requests(self, cycle: _Cycle, report: CycleReport) -> bool:
        """Takes pending requests in journal order; True if the batch filled up."""
        for entry in self.inbox.pending():
            try:
                cycle.take(entry)
            except BatchFull:
                return True
            except TransitionRejected as exc:
                logger.info("request %d rejected: %s", entry.id, exc.message)
                cycle.reject(entry, exc.reason)
                report.rejected.append((entry.id, exc.reason))
                continue
            report.requests += 1
        return False


class _Cycle:
    """One cycle's requests through the engine, and what the journal must say about them after."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.liquidations: list[LiquidationReport] = []
        self.changes: list[tuple[int, str, str | None, int | None, int | None]] = []
        self.orders: dict[OrderKey, tuple[int, PlaceOrder]] = {}  # key -> (journal id, order)
        self.ended: dict[OrderKey, tuple[str, str | None]] = {}  # key -> (status, reason)

    def restore(self, entry: InboxEntry) -> None:
        order: PlaceOrder = entry.request
        key = (order.account_id, order.nonce)
        self.orders[key] = (entry.id, order)
        if not self.engine.restore(order):
            self.ended[key] = ("expired", None)  # unless the ledger shows it filled (finish)

    def take(self, entry: InboxEntry) -> None:
        """Runs one pending request; raises TransitionRejected / BatchFull (nothing recorded)."""
        request = entry.request
        if isinstance(request, PlaceOrder):
            outcome = self.engine.submit(request)
            self.orders[outcome.key] = (entry.id, request)
            if not outcome.rested and outcome.remaining:
                self.ended[outcome.key] = ("done", outcome.ended_by)
            for key, why in outcome.removed:
                self.ended[key] = ("cancelled", why)
            return
        if isinstance(request, CancelOrder):
            self.engine.cancel(request)
            self.changes.append((entry.id, "included", None, None, None))
            self.ended[(request.account_id, request.nonce)] = ("cancelled", "cancelled_by_owner")
            return
        # The request's slot in the withdrawals tree is the count before it (forced payouts earlier
        # in the batch take slots too).
        slot = self.engine.builder.withdrawal_count if isinstance(request, Withdraw) else None
        if isinstance(request, PriceUpdate):
            self.liquidations.append(self.engine.price(request))
        else:
            self.engine.builder.add(request)
        self.changes.append((entry.id, "included", None, None, slot))

    def drop_orders(self, account_id: int, market_id: int, reason: str) -> None:
        """Takes the account's resting orders in the market off the book (its position is gone)."""
        book = self.engine.books[market_id]
        for resting in book.orders_of(account_id):
            book.cancel(resting.key)
            self.ended[resting.key] = ("cancelled", reason)

    def reject(self, entry: InboxEntry, reason: str) -> None:
        self.changes.append((entry.id, "rejected", reason, None, None))

    def finish(self, report: CycleReport) -> None:
        """End of cycle: expiries, funding, a liquidation scan of every market."""
        engine = self.engine
        for key in engine.expire():
            self.ended[key] = ("expired", None)
        for market in engine.ledger.markets:
            if engine.now - market.funding_time >= FUNDING_INTERVAL or market.funding_time == 0:
                engine.fund(market.market_id)
            self.liquidations.append(engine.liquidate(market.market_id))
        for rep in self.liquidations:
            report.liquidations.extend(rep.liquidated)
            report.backstops.extend(rep.backstopped)
            report.deleverages.extend(rep.deleveraged)

    def journal_changes(self, *, seq: int | None) -> list[JournalChange]:
        out: list[JournalChange] = [
            (rid, st, why, seq if st == "included" else None, slot, None)
            for rid, st, why, _, slot in self.changes
        ]
        resting = dict(self.engine.resting())
        ledger = self.engine.ledger
        for key, (rid, order) in self.orders.items():
            leaf = ledger.order(order.account_id, order.nonce % ORDER_SLOTS)
            filled = leaf.filled if leaf is not None and leaf.nonce == order.nonce else 0
            if key in resting:
                out.append((rid, "open", None, None, None, order.size - resting[key]))
            elif filled >= order.size:
                out.append((rid, "filled", None, seq, None, filled))
            else:
                status, why = self.ended.get(key, ("done", None))
                out.append((rid, status, why, seq if filled else None, None, filled))
        return out
