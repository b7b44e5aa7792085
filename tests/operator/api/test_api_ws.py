"""WebSocket /v1/ws: subscribe, receive, unsubscribe, errors, slow consumers, limits."""

import pytest
from api_fixtures import BTC, Exchange
from starlette.websockets import WebSocketDisconnect

from isoperp.api import ApiLimits, Feed
from isoperp.api.feed import SLOW_CONSUMER_CLOSE_CODE


def subscribe(ws, *channels, request_id=None):
    message = {"op": "subscribe", "channels": list(channels)}
    if request_id is not None:
        message["id"] = request_id
    ws.send_json(message)
    return ws.receive_json()


def test_ws_subscribe_receive_unsubscribe(ex, client):
    ex.books[BTC] = ([(599_000, 3)], [(601_000, 4)])
    with client.websocket_connect("/v1/ws") as ws:
        ack = subscribe(ws, "trades", "book:BTC-USD", request_id=7)
        assert ack == {"type": "subscribed", "channels": ["trades", "book:BTC-USD"], "id": 7}
        snapshot = ws.receive_json()
        assert snapshot["type"] == "snapshot" and snapshot["channel"] == "book:BTC-USD"
        assert snapshot["data"]["bids"] == [{"price": "599000", "size": "3"}]
        ex.feed.publish("trades", {"price": "600000", "size": "5"})
        assert ws.receive_json() == {
            "type": "update",
            "channel": "trades",
            "data": {"price": "600000", "size": "5"},
        }
        ex.feed.publish("checkpoints", {"seq": 1})  # not subscribed: not delivered
        ex.feed.publish("book:BTC-USD", {"bids": []})
        assert ws.receive_json()["channel"] == "book:BTC-USD"
        ws.send_json({"op": "unsubscribe", "channels": ["trades"]})
        assert ws.receive_json() == {"type": "unsubscribed", "channels": ["trades"]}
        ex.feed.publish("trades", {"price": "1"})
        ws.send_json({"op": "ping", "id": "p"})
        assert ws.receive_json() == {"type": "pong", "time": ex.now, "id": "p"}
        assert client.get("/v1/health").json()["feedSubscribers"] == 1
    assert ex.feed.subscriber_count() == 0


@pytest.mark.parametrize("name", ["book:0", "book:btc", "book:btc-usd"])
def test_ws_book_channel_names_are_canonical(client, name):
    with client.websocket_connect("/v1/ws") as ws:
        assert subscribe(ws, name)["channels"] == ["book:BTC-USD"]


def test_ws_every_channel_can_be_subscribed(client):
    channels = [
        "book:BTC-USD",
        "book:ETH-USD",
        "book:GRID-USD",
        "trades",
        "liquidations",
        "checkpoints",
    ]
    with client.websocket_connect("/v1/ws") as ws:
        assert subscribe(ws, *channels)["channels"] == channels


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("{not json", "malformed_json"),
        ("NaN", "malformed_json"),
        ("[1, 2]", "validation"),
        ('{"op": "subscribe"}', "validation"),
        ('{"op": "subscribe", "channels": "trades"}', "validation"),
        ('{"op": "subscribe", "channels": []}', "validation"),
        ('{"op": "subscribe", "channels": [1]}', "validation"),
        ('{"op": "subscribe", "channels": ["trades"], "x": 1}', "validation"),
        ('{"op": "subscribe", "channels": ["trades"], "id": [1]}', "validation"),
        ('{"op": "subscribe", "channels": ["candles"]}', "unknown_channel"),
        ('{"op": "subscribe", "channels": ["book:DOGE-USD"]}', "unknown_channel"),
        ('{"op": "publish", "channels": ["trades"]}', "bad_op"),
        ('{"channels": ["trades"]}', "bad_op"),
        ('{"op": 5}', "bad_op"),
    ],
)
def test_ws_bad_messages_get_an_error_and_the_connection_stays(ex, client, message, code):
    with client.websocket_connect("/v1/ws") as ws:
        ws.send_text(message)
        reply = ws.receive_json()
        assert reply["type"] == "error" and reply["error"]["code"] == code, reply
        assert reply["error"]["message"]
        assert subscribe(ws, "trades")["type"] == "subscribed"
    assert ex.feed.subscriber_count() == 0


def test_ws_unknown_channel_subscribes_none_of_the_list(ex, client):
    with client.websocket_connect("/v1/ws") as ws:
        reply = subscribe(ws, "trades", "nope", request_id=3)
        assert reply["error"]["code"] == "unknown_channel" and reply["id"] == 3
        assert ex.feed.subscriber_count("trades") == 0


def test_ws_binary_frames_and_large_messages_are_refused(client):
    with client.websocket_connect("/v1/ws") as ws:
        ws.send_bytes(b"\xff\xfe")
        assert ws.receive_json()["error"]["code"] == "malformed_json"
        ws.send_bytes(b'{"op": "ping"}')
        assert ws.receive_json()["type"] == "pong"
        ws.send_text('{"op": "ping", "id": "' + "x" * 5000 + '"}')
        assert ws.receive_json()["error"]["code"] == "body_too_large"


def test_ws_slow_consumer_is_dropped_with_4001(tmp_path):
    ex = Exchange(tmp_path, feed=Feed(queue_size=4))
    with ex.client() as client, client.websocket_connect("/v1/ws") as ws:
        subscribe(ws, "trades")
        ex.feed.publish_many([("trades", {"n": i}) for i in range(50)])
        with pytest.raises(WebSocketDisconnect) as info:
            while True:
                ws.receive_json()
        assert info.value.code == SLOW_CONSUMER_CLOSE_CODE
    assert ex.feed.dropped == 1 and ex.feed.subscriber_count() == 0


def test_ws_fast_consumer_gets_every_message_in_order(tmp_path):
    ex = Exchange(tmp_path, feed=Feed(queue_size=64))
    with ex.client() as client, client.websocket_connect("/v1/ws") as ws:
        subscribe(ws, "trades")
        for batch in range(10):
            ex.feed.publish_many([("trades", {"n": batch * 10 + i}) for i in range(10)])
            got = [ws.receive_json()["data"]["n"] for _ in range(10)]
            assert got == list(range(batch * 10, batch * 10 + 10))
    assert ex.feed.dropped == 0


def test_ws_message_rate_is_limited_per_connection(tmp_path):
    ex = Exchange(tmp_path, limits=ApiLimits(ws_message_rate=1, ws_message_burst=2))
    with ex.client() as client, client.websocket_connect("/v1/ws") as ws:
        ws.send_json({"op": "ping"})
        ws.send_json({"op": "ping"})
        ws.send_json({"op": "ping"})
        replies = [ws.receive_json() for _ in range(3)]
        assert [r["type"] for r in replies] == ["pong", "pong", "error"]
        assert replies[2]["error"]["code"] == "rate_limited"
        ex.clock.t += 1
        ws.send_json({"op": "ping"})
        assert ws.receive_json()["type"] == "pong"


def test_ws_connects_count_against_the_address_budget(tmp_path):
    ex = Exchange(tmp_path, limits=ApiLimits(ip_rate=1, ip_burst=1))
    with ex.client() as client:
        with client.websocket_connect("/v1/ws") as ws:
            ws.send_json({"op": "ping"})
            assert ws.receive_json()["type"] == "pong"
        with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect("/v1/ws"):
            pass
        assert info.value.code == 1008


def test_publish_without_subscribers_or_loop_is_a_no_op():
    feed = Feed()
    feed.publish("trades", {"x": 1})
    assert feed.published == 1 and feed.delivered == 0


def test_ws_deeply_nested_message_is_malformed(client):
    with client.websocket_connect("/v1/ws") as ws:
        ws.send_text("[" * 1000 + "]" * 1000)
        assert ws.receive_json()["error"]["code"] == "malformed_json"
