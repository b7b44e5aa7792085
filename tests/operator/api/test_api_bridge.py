"""OperatorBridge: providers over an operator's ledger, checkpoints and journal, and the feed
events of each refresh."""

from dataclasses import dataclass, field

from api_fixtures import ALICE, BOB, BTC, DOMAIN, NOW, post
from fastapi.testclient import TestClient

from isoperp.api.app import create_app
from isoperp.api.bridge import OperatorBridge
from isoperp.api.feed import Feed
from isoperp.chain.l1 import PostedCheckpoint
from isoperp.ledger.ledger import Ledger
from isoperp.ledger.transitions import Backstop, Fill, Liquidate
from isoperp.protocol.header import ZERO32, CheckpointHeader
from isoperp.service.inbox import Inbox


class RecordingFeed(Feed):
    def __init__(self):
        super().__init__()
        self.events = []

    def publish_many(self, items):
        items = list(items)
        self.events.extend(items)
        super().publish_many(items)

    def take(self):
        events, self.events = self.events, []
        return events


@dataclass
class FakeService:
    ledger: Ledger
    inbox: Inbox
    checkpoints: list = field(default_factory=list)


def posted(seq, transitions, *, finalizes_at, withdrawals=0):
    header = CheckpointHeader(
        seq,
        ZERO32,
        bytes([seq]) * 32,
        0,
        ZERO32,
        0,
        ZERO32,
        ZERO32,
        withdrawals,
        0,
        ZERO32,
        ZERO32,
        len(transitions),
        0,
        NOW + seq,
    )
    return PostedCheckpoint(header, b"", tuple(transitions), f"0x{seq:064x}", seq, finalizes_at)


class Chain:
    def __init__(self):
        self.time = NOW
        self.finalized = set()

    def is_finalized(self, seq):
        return seq in self.finalized


def make(ex, tmp_path):
    inbox = Inbox(tmp_path / "operator-journal.sqlite")
    service = FakeService(ex.ledger, inbox)
    chain = Chain()
    feed = RecordingFeed()
    clock = [100.0]
    bridge = OperatorBridge(
        service,
        DOMAIN,
        feed=feed,
        chain_time=lambda: chain.time,
        is_finalized=chain.is_finalized,
        monotonic=lambda: clock[0],
    )
    return service, chain, feed, clock, bridge


def test_bridge_refresh_takes_trades_books_and_checkpoints(ex, tmp_path):
    service, chain, feed, clock, bridge = make(ex, tmp_path)
    bridge.refresh()
    first = feed.take()
    assert {channel for channel, _ in first} == {"book:BTC-USD", "book:ETH-USD", "book:GRID-USD"}
    assert bridge.trades(None, 10) == [] and bridge.checkpoints() == []

    # A checkpoint with one fill (Alice buys from Bob's resting sell) and a liquidation.
    ex.apply(ex.order(BOB, is_buy=False, nonce=1, size=500, price=600_000))
    ex.apply(ex.order(ALICE, is_buy=True, nonce=1, size=500, price=600_000))
    fill = Fill(BTC, BOB, 1, ALICE, 1, 200, 600_000, NOW + 1)
    ex.apply(fill)
    liquidate = Liquidate(BTC, ALICE, BOB, 1, 50, 600_000, NOW + 2)
    service.checkpoints = [
        posted(1, [fill, liquidate, Backstop(BTC, 2, NOW + 3)], finalizes_at=NOW + 100)
    ]
    service.ledger = ex.ledger
    service.inbox.submit(ex.order(BOB, is_buy=False, nonce=2, size=7, price=601_000))
    entry = service.inbox.pending()[0]
    service.inbox.update([(entry.id, "open", None, None, None, 0)])
    bridge.refresh()

    trades = bridge.trades(None, 10)
    assert [(t.size, t.taker_is_buy, t.liquidation, t.seq) for t in trades] == [
        (50, True, True, 1),
        (200, True, False, 1),
    ]
    assert bridge.trades(BTC, 1) == trades[:1] and bridge.trades(1, 10) == []
    assert bridge.book(BTC) == ([], [(601_000, 7)])
    [cp] = bridge.checkpoints()
    assert (cp.seq, cp.finalized, cp.tx_hash, cp.posted_at) == (1, False, f"0x{1:064x}", NOW + 1)

    events = feed.take()
    channels = [c for c, _ in events]
    assert channels.count("trades") == 2 and channels.count("liquidations") == 2
    assert channels.count("checkpoints") == 1
    liquidations = [p for c, p in events if c == "liquidations"]
    assert [p["kind"] for p in liquidations] == ["liquidate", "backstop"]
    assert liquidations[0]["accountId"] == ALICE and liquidations[0]["size"] == "50"
    book = next(p for c, p in events if c == "book:BTC-USD")
    assert book["asks"] == [{"price": "601000", "size": "7"}]

    # Nothing new: no trade or checkpoint events again; finality turns up once.
    bridge.refresh()
    assert [c for c, _ in feed.take()] == []
    chain.time = NOW + 100
    chain.finalized.add(1)
    bridge.refresh()
    [(channel, payload)] = feed.take()
    assert channel == "checkpoints" and payload["finalized"] is True
    assert bridge.checkpoints()[0].finalized is True

    # Chain time moves on with the wall clock between refreshes.
    clock[0] += 7.5
    assert bridge.now() == NOW + 107


def test_bridge_finality_waits_for_the_contract(ex, tmp_path):
    service, _chain, _, _, bridge = make(ex, tmp_path)
    service.checkpoints = [posted(1, [], finalizes_at=NOW)]
    bridge.refresh()
    assert bridge.checkpoints()[0].finalized is False  # frozen, say: the contract says no


def test_bridge_state_serves_the_api(ex, tmp_path):
    service, _chain, _, _, bridge = make(ex, tmp_path)
    ex.apply(ex.order(BOB, is_buy=False, nonce=1, size=500, price=600_000))
    ex.apply(ex.order(ALICE, is_buy=True, nonce=1, size=500, price=600_000))
    fill = Fill(BTC, BOB, 1, ALICE, 1, 200, 600_000, NOW + 1)
    ex.apply(fill)
    service.checkpoints = [posted(1, [fill], finalizes_at=NOW + 60)]
    bridge.refresh()
    state = bridge.api_state(lambda: Inbox(tmp_path / "operator-journal.sqlite"))
    with TestClient(create_app(state)) as client:
        assert client.get("/v1/trades").json()[0]["size"] == "200"
        body = client.get("/v1/checkpoints").json()
        assert body["latestSeq"] == 1 and body["checkpoints"][0]["secondsToFinality"] == 60
        assert client.get(f"/v1/accounts/{ALICE}/positions").json()[0]["size"] == "200"
        assert post(client, ex.order(ALICE, nonce=9, size=1)).status_code == 202
    assert [e.request.nonce for e in service.inbox.pending()] == [9]
