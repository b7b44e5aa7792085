"""The app served by uvicorn on a background thread (ApiServer), as `isoperp operator run` does:
HTTP and WebSocket over real sockets, with the feed published from another thread."""

import json
import threading

import httpx
import pytest
from api_fixtures import ALICE, body_of
from websockets.sync.client import connect

from isoperp.api.app import create_app
from isoperp.api.server import ApiServer


@pytest.fixture
def server(ex):
    served = ApiServer(create_app(ex.state()), port=0).start()
    yield served
    served.stop()
    assert served.thread is None


def test_server_serves_http_and_journals(ex, server):
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.get("/v1/health").json()["status"] == "ok"
        response = http.post("/v1/orders", json=body_of(ex.order(ALICE)))
        assert response.status_code == 202, response.text
        response = http.post(
            "/v1/orders", content=b"x" * 20_000, headers={"content-type": "application/json"}
        )
        assert response.status_code == 413
    assert [kind for _, kind, _, _ in ex.journal()] == ["PlaceOrder"]


def test_server_feed_published_from_another_thread(ex, server):
    url = server.url.replace("http", "ws") + "/v1/ws"
    with connect(url, open_timeout=10) as ws:
        ws.send(json.dumps({"op": "subscribe", "channels": ["trades", "book:BTC"]}))
        assert json.loads(ws.recv(timeout=10))["type"] == "subscribed"
        assert json.loads(ws.recv(timeout=10))["type"] == "snapshot"

        def operator_cycle():
            for n in range(20):
                ex.feed.publish("trades", {"n": n})

        thread = threading.Thread(target=operator_cycle)
        thread.start()
        thread.join()
        got = [json.loads(ws.recv(timeout=10))["data"]["n"] for _ in range(20)]
        assert got == list(range(20))


def test_server_port_zero_picks_a_free_port(server):
    assert server.port > 0 and server.url.startswith("http://127.0.0.1:")
