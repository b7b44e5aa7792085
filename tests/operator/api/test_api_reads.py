"""GET endpoints: markets, book, trades, accounts, positions, orders, requests, checkpoints,
forced requests, health."""

import pytest
from api_fixtures import ALICE, BOB, BTC, CAROL, GRID, NOW, USDC, error_code, post

from isoperp.api import CheckpointView, ForcedRequestView, TradeView
from isoperp.ledger import risk
from isoperp.ledger.transitions import Fill


def fill_alice_long(ex, size=100_000, price=600_000):
    """Alice buys ``size`` lots of BTC from Bob at ``price`` (registered and filled)."""
    ex.apply(ex.order(BOB, is_buy=False, nonce=1, size=size, price=price))
    ex.apply(ex.order(ALICE, is_buy=True, nonce=1, size=size, price=price))
    ex.apply(Fill(BTC, BOB, 1, ALICE, 1, size, price, NOW))


# ------------------------------------------------------------------------------------ markets


def test_get_markets_lists_every_market_with_strings_for_wide_integers(client):
    markets = client.get("/v1/markets").json()
    assert [m["symbol"] for m in markets] == ["BTC-USD", "ETH-USD", "GRID-USD"]
    btc = markets[0]
    assert btc["marketId"] == 0 and btc["priceDecimals"] == 1 and btc["sizeDecimals"] == 5
    assert btc["markPrice"] == "600000" and btc["priceTick"] == "1" and btc["imfPpm"] == 50_000
    grid = markets[2]
    assert (grid["priceTick"], grid["sizeStep"], grid["minSize"]) == ("10", "5", "10")


@pytest.mark.parametrize("name", ["BTC-USD", "btc-usd", "BTC", "0"])
def test_get_book_by_symbol_alias_or_id(ex, client, name):
    ex.books[BTC] = ([(599_990, 10), (599_980, 5)], [(600_010, 7)])
    book = client.get(f"/v1/book/{name}").json()
    assert book["symbol"] == "BTC-USD" and book["markPrice"] == "600000"
    assert book["bids"] == [
        {"price": "599990", "size": "10"},
        {"price": "599980", "size": "5"},
    ]
    assert book["asks"] == [{"price": "600010", "size": "7"}]
    assert book["time"] == NOW


def test_get_book_depth_limits_levels(ex, client):
    ex.books[BTC] = ([(600_000 - i, 1) for i in range(30)], [])
    assert len(client.get("/v1/book/BTC?depth=3").json()["bids"]) == 3
    assert len(client.get("/v1/book/BTC").json()["bids"]) == 20


@pytest.mark.parametrize("query", ["depth=0", "depth=501", "depth=x", "depth=1.5"])
def test_get_book_bad_depth_is_validation(client, query):
    response = client.get(f"/v1/book/BTC?{query}")
    assert response.status_code == 400 and error_code(response) == "validation"


def test_get_book_unknown_market_is_404(client):
    response = client.get("/v1/book/DOGE-USD")
    assert response.status_code == 404 and error_code(response) == "unknown_market"


def test_get_trades_newest_first_filtered_and_limited(ex, client):
    ex.trade_list = [
        TradeView(BTC, 600_000, 5, True, BOB, ALICE, NOW, 1),
        TradeView(GRID, 1_000, 10, False, ALICE, BOB, NOW + 1, 2),
        TradeView(BTC, 600_010, 2**63, None, BOB, ALICE, NOW + 2, 3, liquidation=True),
    ]
    trades = client.get("/v1/trades").json()
    assert [t["seq"] for t in trades] == [3, 2, 1]
    assert trades[0] == {
        "marketId": 0,
        "symbol": "BTC-USD",
        "price": "600010",
        "size": str(2**63),
        "side": None,
        "makerAccountId": BOB,
        "takerAccountId": ALICE,
        "timestamp": NOW + 2,
        "seq": 3,
        "liquidation": True,
    }
    assert [t["side"] for t in trades[1:]] == ["sell", "buy"]
    assert [t["seq"] for t in client.get("/v1/trades?market=BTC-USD").json()] == [3, 1]
    assert [t["seq"] for t in client.get("/v1/trades?limit=1").json()] == [3]
    response = client.get("/v1/trades?market=XYZ")
    assert response.status_code == 404 and error_code(response) == "unknown_market"
    response = client.get("/v1/trades?limit=0")
    assert response.status_code == 400 and error_code(response) == "validation"


# ----------------------------------------------------------------------------------- accounts


def test_get_account_by_id_and_by_address(ex, client):
    by_id = client.get(f"/v1/accounts/{CAROL}").json()
    assert by_id == {
        "accountId": CAROL,
        "owner": ex.users[CAROL].address,
        "collateral": str(100_000 * USDC),
        "available": str(100_000 * USDC),
        "nonce": "0",
        "nextNonce": "0",
        "nextOrderNonce": "1",
        "pendingRequests": 0,
    }
    assert client.get(f"/v1/accounts/{ex.users[CAROL].address.lower()}").json() == by_id


def test_get_account_counts_pending_requests(ex, client):
    for request in (
        ex.withdrawal(CAROL, 1_000 * USDC),
        ex.margin(CAROL, 2_000 * USDC, nonce=1),
        ex.order(CAROL, nonce=7, size=1),  # sees the pending margin move
        ex.margin(CAROL, -500 * USDC, nonce=2),
    ):
        assert post(client, request).status_code == 202
    account = client.get(f"/v1/accounts/{CAROL}").json()
    assert account["nextNonce"] == "3"
    assert account["available"] == str(97_000 * USDC)  # margin out is not counted until applied
    assert account["nextOrderNonce"] == "8"
    assert account["pendingRequests"] == 4


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/v1/accounts/99", 404, "unknown_account"),
        ("/v1/accounts/0x0000000000000000000000000000000000000001", 404, "unknown_account"),
        ("/v1/accounts/alice", 400, "validation"),
        ("/v1/accounts/-1", 400, "validation"),
        ("/v1/accounts/99999999999999999999/positions", 400, "validation"),
        ("/v1/accounts/99/positions", 404, "unknown_account"),
        ("/v1/accounts/99/orders", 404, "unknown_account"),
        ("/v1/accounts/99/requests", 404, "unknown_account"),
    ],
)
def test_get_account_unknown_or_garbage(client, path, status, code):
    response = client.get(path)
    assert response.status_code == status and error_code(response) == code


def test_get_positions_values_match_the_risk_views(ex, client):
    fill_alice_long(ex)
    positions = client.get(f"/v1/accounts/{ALICE}/positions").json()
    assert [p["symbol"] for p in positions] == ["BTC-USD", "GRID-USD"]
    btc, grid = positions
    position = ex.ledger.position(ALICE, BTC)
    market = ex.ledger.market(BTC)
    assert btc["size"] == "100000" and btc["entryPrice"] == "600000"
    assert btc["equity"] == str(risk.equity(position, market))
    assert btc["liquidationPrice"] == str(risk.liquidation_price(position, market))
    assert btc["bankruptcyPrice"] == str(risk.bankruptcy_price(position, market))
    assert btc["marginRatioPpm"] == str(risk.margin_ratio(position, market))
    assert btc["initialMargin"] == str(3_000 * USDC)  # 5% of $60,000
    assert btc["maintenanceMargin"] == str(1_800 * USDC)
    assert btc["unrealizedPnl"] == "0" and btc["liquidatable"] is False
    assert int(btc["liquidationPrice"]) < 600_000
    assert grid["size"] == "0" and grid["entryPrice"] is None
    assert grid["liquidationPrice"] is None and grid["marginRatioPpm"] is None
    short = client.get(f"/v1/accounts/{BOB}/positions").json()[0]
    assert short["size"] == "-100000" and int(short["liquidationPrice"]) > 600_000
    assert client.get(f"/v1/accounts/{CAROL}/positions").json() == []


def test_get_orders_and_requests_follow_the_journal(ex, client):
    first = post(client, ex.order(ALICE, nonce=1)).json()["requestId"]
    second = post(client, ex.order(ALICE, nonce=2, is_buy=False, price=610_000)).json()
    post(client, ex.withdrawal(ALICE, USDC))
    ex.mark(first, "open", filled=40)
    orders = client.get(f"/v1/accounts/{ALICE}/orders").json()
    assert [(o["requestId"], o["status"], o["filled"]) for o in orders] == [
        (first, "open", "40"),
        (second["requestId"], "pending", "0"),
    ]
    assert orders[1]["isBuy"] is False and orders[1]["price"] == "610000"
    open_only = client.get(f"/v1/accounts/{ALICE}/orders?status=open").json()
    assert [o["requestId"] for o in open_only] == [first]
    response = client.get(f"/v1/accounts/{ALICE}/orders?status=bogus")
    assert response.status_code == 400 and error_code(response) == "validation"
    requests = client.get(f"/v1/accounts/{ALICE}/requests").json()
    assert [r["kind"] for r in requests] == ["order", "order", "withdrawal"]
    latest = client.get(f"/v1/accounts/{ALICE}/requests?limit=2").json()
    assert [r["kind"] for r in latest] == ["order", "withdrawal"]
    latest = client.get(f"/v1/accounts/{ALICE}/orders?limit=1").json()
    assert [o["requestId"] for o in latest] == [second["requestId"]]
    assert requests[2]["amount"] == str(USDC) and requests[2]["status"] == "pending"


# -------------------------------------------------------------------- checkpoints and the rest


def test_get_checkpoints_status_and_time_to_finality(ex, client):
    ex.checkpoint_list = [
        CheckpointView(1, b"\x11" * 32, NOW - 900, NOW - 300, True, 0, "0xaa"),
        CheckpointView(2, b"\x22" * 32, NOW - 100, NOW + 500, False, 2, "0xbb"),
    ]
    body = client.get("/v1/checkpoints").json()
    assert body["latestSeq"] == 2 and body["finalizedSeq"] == 1
    newest, oldest = body["checkpoints"]
    assert newest == {
        "seq": 2,
        "stateRoot": "0x" + "22" * 32,
        "postedAt": NOW - 100,
        "finalizesAt": NOW + 500,
        "finalized": False,
        "status": "pending",
        "secondsToFinality": 500,
        "withdrawalCount": 2,
        "txHash": "0xbb",
    }
    assert oldest["status"] == "finalized" and oldest["secondsToFinality"] == 0
    assert [c["seq"] for c in client.get("/v1/checkpoints?limit=1").json()["checkpoints"]] == [2]


def test_get_checkpoints_empty(client):
    assert client.get("/v1/checkpoints").json() == {
        "latestSeq": None,
        "finalizedSeq": None,
        "checkpoints": [],
    }


def test_get_forced_requests_statuses(ex, client):
    requester = ex.users[ALICE].address
    ex.forced_list = [
        ForcedRequestView(0, "withdrawal", requester, ALICE, 0, 5 * USDC, NOW - 50, True, NOW),
        ForcedRequestView(1, "exit", requester, ALICE, BTC, 0, NOW - 40, False, NOW + 260),
        ForcedRequestView(2, "exit", requester, ALICE, BTC, 0, NOW - 400, False, NOW - 100),
    ]
    forced = client.get("/v1/forced-requests").json()
    assert [f["status"] for f in forced] == ["served", "pending", "overdue"]
    assert forced[0]["amount"] == str(5 * USDC) and forced[0]["kind"] == "withdrawal"


def test_get_health(ex, client):
    ex.checkpoint_list = [CheckpointView(4, b"\x44" * 32, NOW, NOW + 1, False, 0, "0x")]
    assert client.get("/v1/health").json() == {
        "status": "ok",
        "time": NOW,
        "latestSeq": 4,
        "stateRoot": "0x" + "44" * 32,
        "markets": 3,
        "feedSubscribers": 0,
    }
