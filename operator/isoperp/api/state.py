"""What the API reads and writes, injected as providers so that it runs (and is tested) without a
chain: the latest checkpointed ledger, the checkpoints, the journal, the book, trades, forced
requests, a clock and the feed.

Providers are called from the API's threads while the operator keeps running: each must return a
value that is never mutated afterwards (the operator swaps in a new snapshot instead of changing the
old one; ``isoperp.api.bridge.OperatorBridge`` does exactly that)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from isoperp.api.feed import Feed
from isoperp.ledger.ledger import Ledger
from isoperp.protocol.signing import Domain
from isoperp.service.inbox import Inbox

Depth = tuple[list[tuple[int, int]], list[tuple[int, int]]]
"""(bids best first, asks best first), each level ``(price in ticks, size in lots)``."""


@dataclass(frozen=True, slots=True)
class CheckpointView:
    """A posted checkpoint as the API shows it."""

    seq: int
    state_root: bytes
    posted_at: int
    """Unix seconds: the header's timestamp."""
    finalizes_at: int
    """Unix seconds from which its withdrawals can be claimed (unless the settlement froze)."""
    finalized: bool
    withdrawal_count: int
    tx_hash: str


@dataclass(frozen=True, slots=True)
class TradeView:
    """One fill of a posted batch (a FILL record, or a LIQUIDATE record with ``liquidation``)."""

    market_id: int
    price: int
    size: int
    taker_is_buy: bool | None
    """The taker's side (for a liquidation: the liquidated position's closing side); None when
    the order leaf that tells it was already replaced."""
    maker_account: int
    taker_account: int
    timestamp: int
    seq: int
    liquidation: bool = False


@dataclass(frozen=True, slots=True)
class ForcedRequestView:
    """An entry of the Settlement's forced-request queue (PROTOCOL section 4.1)."""

    index: int
    kind: str
    """``"withdrawal"`` or ``"exit"``."""
    requester: str
    account_id: int
    market_id: int
    amount: int
    requested_at: int
    served: bool
    deadline: int | None = None
    """Unix seconds by which a checkpoint must serve it (None if unknown)."""


@dataclass(frozen=True, slots=True)
class ApiLimits:
    """Abuse limits. Rates are requests per second; bursts are bucket sizes."""

    max_body_bytes: int = 16 * 1024
    """Larger request bodies are refused with 413 before anything parses them."""
    account_rate: float = 20.0
    """Signed submissions per second per account (charged once the signature verified)."""
    account_burst: int = 40
    ip_rate: float = 50.0
    """Requests per second per client address (reads, writes, WebSocket connects)."""
    ip_burst: int = 100
    ws_message_rate: float = 10.0
    """WebSocket control messages (subscribe, unsubscribe, ping) per second per connection."""
    ws_message_burst: int = 20
    ws_max_message_bytes: int = 4096
    max_tracked_keys: int = 100_000
    """Rate-limit buckets kept (least recently used ones are forgotten first)."""


@dataclass
class ApiState:
    """Everything the API needs, as providers."""

    ledger: Callable[[], Ledger]
    """The ledger after the latest posted checkpoint (an immutable snapshot)."""
    checkpoints: Callable[[], list[CheckpointView]]
    """Posted checkpoints, oldest first."""
    inbox: Callable[[], Inbox]
    """Opens the journal. Called once, on the API's single journal thread (sqlite3 connections
    are bound to the thread that opened them); every journal read and write runs there, in order,
    so validation and ``Inbox.submit`` of one request are never interleaved with another's."""
    domain: Domain
    book: Callable[[int], Depth]
    """Depth of a market's book by market id."""
    trades: Callable[[int | None, int], list[TradeView]]
    """``trades(market_id or None for all, limit)``: the most recent first."""
    forced: Callable[[], list[ForcedRequestView]] = list
    now: Callable[[], int] = field(default=lambda: int(time.time()))
    """Unix seconds (order expiry, time to finality)."""
    feed: Feed = field(default_factory=Feed)
    """The hub the operator publishes to (``Feed(queue_size=...)`` bounds each subscriber)."""
    limits: ApiLimits = field(default_factory=ApiLimits)
    monotonic: Callable[[], float] = time.monotonic
    """The rate limiters' clock."""
