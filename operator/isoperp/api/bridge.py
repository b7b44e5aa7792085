"""Between the operator and the API: providers over an ``OperatorService`` and the feed events of
each cycle.

Wiring (the operator thread runs the cycles, uvicorn serves the app in another thread)::

    service = OperatorService(system, inbox)
    service.sync()
    bridge = OperatorBridge.for_system(service, system)
    app = create_app(bridge.api_state(lambda: Inbox(journal_path)))
    server = ApiServer(app, host="127.0.0.1", port=8080).start()
    bridge.refresh()
    while True:
        report = service.run_once()
        bridge.refresh()          # snapshots, trades, books; publishes to the feed
        time.sleep(interval)

``refresh`` must run on the thread that owns ``service.inbox`` (it reads the open orders to
rebuild the books). Everything the providers hand out is immutable or replaced wholesale, so the
API's threads never see a half-updated value.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from isoperp.api import views
from isoperp.api.feed import Feed
from isoperp.api.state import (
    ApiState,
    CheckpointView,
    Depth,
    ForcedRequestView,
    TradeView,
)
from isoperp.api.ws import BOOK_LEVELS
from isoperp.batch.builder import BatchBuilder
from isoperp.chain.l1 import PostedCheckpoint
from isoperp.exchange.engine import Engine
from isoperp.ledger.ledger import Ledger
from isoperp.ledger.transitions import Backstop, Deleverage, Fill, Liquidate
from isoperp.protocol.header import ZERO32, CheckpointHeader
from isoperp.protocol.signing import Domain
from isoperp.service.inbox import Inbox

if TYPE_CHECKING:
    from isoperp.service.operator import OperatorService

logger = logging.getLogger(__name__)

MAX_TRADES = 1000
FORCED_KINDS = {1: "withdrawal", 2: "exit"}


class ServiceLike(Protocol):
    """What the bridge reads of an ``OperatorService``."""

    @property
    def ledger(self) -> Ledger: ...

    @property
    def checkpoints(self) -> list[PostedCheckpoint]: ...

    @property
    def inbox(self) -> Inbox: ...


@dataclass
class _Snapshot:
    ledger: Ledger
    checkpoints: list[CheckpointView] = field(default_factory=list)
    books: dict[int, Depth] = field(default_factory=dict)
    forced: list[ForcedRequestView] = field(default_factory=list)
    chain_time: int = 0
    taken_at: float = 0.0


class OperatorBridge:
    """Providers for ``ApiState`` over an operator, refreshed after each cycle."""

    def __init__(
        self,
        service: ServiceLike,
        domain: Domain,
        *,
        feed: Feed | None = None,
        chain_time: Callable[[], int] | None = None,
        is_finalized: Callable[[int], bool] | None = None,
        forced_reader: Callable[[Ledger, int], list[ForcedRequestView]] | None = None,
        max_trades: int = MAX_TRADES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.domain = domain
        self.feed = feed or Feed()
        self._chain_time = chain_time or (lambda: int(time.time()))
        self._is_finalized = is_finalized
        self._forced_reader = forced_reader
        self._monotonic = monotonic
        self._trades: deque[TradeView] = deque(maxlen=max_trades)
        self._finalized: set[int] = set()
        self._seen: dict[int, bytes] = {}  # seq -> header hash of the checkpoints published
        self._lock = threading.Lock()
        self._snap = _Snapshot(service.ledger)

    @classmethod
    def for_system(
        cls, service: OperatorService, system: Any, *, feed: Feed | None = None
    ) -> OperatorBridge:
        """A bridge that reads chain time and finality from ``system`` (an
        ``isoperp.chain.contracts.System``) and the forced-request queue from the service's chain
        watcher (refreshes run on the operator's thread, between its polls)."""
        w3 = system.client.w3
        deadline = int(system.deployment.forced_deadline)

        def forced(ledger: Ledger, _now: int) -> list[ForcedRequestView]:
            cursor = ledger.exchange.forced_cursor
            return [
                ForcedRequestView(
                    index=f.index,
                    kind=FORCED_KINDS.get(f.kind, str(f.kind)),
                    requester=f.requester,
                    account_id=f.account_id,
                    market_id=f.market_id,
                    amount=f.amount,
                    requested_at=f.timestamp,
                    served=f.index < cursor,
                    deadline=f.timestamp + deadline,
                )
                for f in service.watcher.forced
            ]

        return cls(
            service,
            system.domain,
            feed=feed,
            chain_time=lambda: int(w3.eth.get_block("latest")["timestamp"]),
            is_finalized=lambda seq: bool(system.settlement.functions.isFinalized(seq).call()),
            forced_reader=forced,
        )

    # -- providers (any thread) -------------------------------------------------------------------

    def api_state(self, inbox: Callable[[], Inbox], **kwargs: Any) -> ApiState:
        return ApiState(
            ledger=self.ledger,
            checkpoints=self.checkpoints,
            inbox=inbox,
            domain=self.domain,
            book=self.book,
            trades=self.trades,
            forced=self.forced,
            now=self.now,
            feed=self.feed,
            **kwargs,
        )

    def ledger(self) -> Ledger:
        return self._snap.ledger

    def checkpoints(self) -> list[CheckpointView]:
        return self._snap.checkpoints

    def book(self, market_id: int) -> Depth:
        return self._snap.books.get(market_id, ([], []))

    def trades(self, market_id: int | None, limit: int) -> list[TradeView]:
        with self._lock:
            recent = list(self._trades)
        out = [t for t in reversed(recent) if market_id is None or t.market_id == market_id]
        return out[:limit]

    def forced(self) -> list[ForcedRequestView]:
        return self._snap.forced

    def now(self) -> int:
        """Chain time: the latest block's timestamp at the last refresh plus the time since."""
        snap = self._snap
        if not snap.taken_at:
            return self._chain_time()
        return snap.chain_time + int(self._monotonic() - snap.taken_at)

    # -- refresh (the operator thread) ------------------------------------------------------------

    def refresh(self) -> None:
        """Takes new snapshots after a cycle and publishes what changed to the feed."""
        service = self.service
        ledger = service.ledger
        chain_time = self._chain_time()
        posted = list(service.checkpoints)
        self._forget_reorged(posted)
        new = [cp for cp in posted if cp.header.seq not in self._seen]
        events: list[tuple[str, Any]] = []
        trades = [t for cp in new for t in self._trades_of(ledger, cp)]
        with self._lock:
            self._trades.extend(trades)
        for t in trades:
            events.append(("trades", views.payload(views.trade_view(ledger, t))))
        for cp in new:
            events.extend(("liquidations", e) for e in self._liquidations_of(ledger, cp))
        checkpoints = self._checkpoint_views(posted, chain_time)
        old = {c.seq: c for c in self._snap.checkpoints}
        for view in checkpoints:
            if old.get(view.seq) != view:
                events.append(
                    ("checkpoints", views.payload(views.checkpoint_view(view, chain_time)))
                )
        books = self._books(ledger, service.inbox, chain_time)
        for market in ledger.markets:
            depth = books.get(market.market_id, ([], []))
            if self._snap.books.get(market.market_id) != depth or new:
                book = views.book_view(market, depth, BOOK_LEVELS, chain_time)
                events.append(("book:" + views.market_meta(market)[0], views.payload(book)))
        forced = self._forced_reader(ledger, chain_time) if self._forced_reader else []
        self._snap = _Snapshot(ledger, checkpoints, books, forced, chain_time, self._monotonic())
        self._seen.update((cp.header.seq, cp.header.hash) for cp in new)
        self.feed.publish_many(events)

    def _forget_reorged(self, posted: Sequence[PostedCheckpoint]) -> None:
        """After a reorg, what was published of checkpoints no longer on the chain (their trades,
        finality) is forgotten; their replacements are published as new."""
        hashes = {cp.header.seq: cp.header.hash for cp in posted}
        gone = [seq for seq, h in self._seen.items() if hashes.get(seq) != h]
        if not gone:
            return
        first = min(gone)
        self._seen = {seq: h for seq, h in self._seen.items() if seq < first}
        self._finalized = {seq for seq in self._finalized if seq < first}
        with self._lock:
            kept = [t for t in self._trades if t.seq < first]
            self._trades.clear()
            self._trades.extend(kept)

    def _checkpoint_views(
        self, posted: Sequence[PostedCheckpoint], chain_time: int
    ) -> list[CheckpointView]:
        out = []
        for cp in posted:
            seq = cp.header.seq
            finalized = seq in self._finalized
            if not finalized and chain_time >= cp.finalizes_at:
                finalized = self._is_finalized(seq) if self._is_finalized else True
                if finalized:
                    self._finalized.add(seq)
            out.append(
                CheckpointView(
                    seq=seq,
                    state_root=cp.header.state_root,
                    posted_at=cp.header.timestamp,
                    finalizes_at=cp.finalizes_at,
                    finalized=finalized,
                    withdrawal_count=cp.header.withdrawal_count,
                    tx_hash=cp.tx_hash,
                )
            )
        return out

    def _books(self, ledger: Ledger, inbox: Inbox, now: int) -> dict[int, Depth]:
        """The books as the next cycle will restore them: the journal's open orders over the
        checkpointed ledger (read only: ``Engine.restore`` only reads order leaves)."""
        engine = Engine(
            ledger, BatchBuilder(ledger, CheckpointHeader.genesis(ZERO32)), self.domain, now=now
        )
        for entry in inbox.open_orders():
            engine.restore(entry.request)
        return {mid: book.depth(BOOK_LEVELS) for mid, book in engine.books.items()}

    @staticmethod
    def _trades_of(ledger: Ledger, cp: PostedCheckpoint) -> list[TradeView]:
        out = []
        for t in cp.transitions:
            if isinstance(t, Fill):
                maker = ledger.order(t.maker_id, t.maker_slot)
                side = None if maker is None else not maker.is_buy
                out.append(
                    TradeView(
                        t.market_id,
                        t.price,
                        t.size,
                        side,
                        t.maker_id,
                        t.taker_id,
                        t.timestamp,
                        cp.header.seq,
                    )
                )
            elif isinstance(t, Liquidate):
                maker = ledger.order(t.maker_id, t.maker_slot)
                side = None if maker is None else not maker.is_buy
                out.append(
                    TradeView(
                        t.market_id,
                        t.price,
                        t.size,
                        side,
                        t.maker_id,
                        t.account_id,
                        t.timestamp,
                        cp.header.seq,
                        liquidation=True,
                    )
                )
        return out

    @staticmethod
    def _liquidations_of(ledger: Ledger, cp: PostedCheckpoint) -> list[dict[str, Any]]:
        seq = cp.header.seq
        out: list[dict[str, Any]] = []
        for t in cp.transitions:
            base: dict[str, Any]
            if isinstance(t, Liquidate):
                base = {
                    "kind": "liquidate",
                    "makerAccountId": t.maker_id,
                    "size": str(t.size),
                    "price": str(t.price),
                }
            elif isinstance(t, Backstop):
                base = {"kind": "backstop"}
            elif isinstance(t, Deleverage):
                base = {
                    "kind": "deleverage",
                    "counterpartyId": t.counterparty_id,
                    "size": str(t.size),
                }
            else:
                continue
            out.append(
                {
                    **base,
                    "marketId": t.market_id,
                    "symbol": views.symbol_of(ledger, t.market_id),
                    "accountId": t.account_id,
                    "timestamp": t.timestamp,
                    "seq": seq,
                }
            )
        return out
