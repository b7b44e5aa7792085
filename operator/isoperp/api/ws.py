"""One WebSocket connection of the feed (``/v1/ws``).

Client -> server (text frames, JSON objects, at most ``ApiLimits.ws_max_message_bytes``):
    {"op": "subscribe", "channels": ["book:BTC-USD", "trades"], "id": 1}
    {"op": "unsubscribe", "channels": ["trades"]}
    {"op": "ping"}
Server -> client:
    {"type": "subscribed", "channels": [...], "id": 1}       (canonical names: book:<SYMBOL>)
    {"type": "snapshot", "channel": "book:BTC-USD", "data": {...}}   (after subscribing a book)
    {"type": "update", "channel": "...", "data": {...}}
    {"type": "unsubscribed", "channels": [...]}
    {"type": "pong", "time": 1700000000}
    {"type": "error", "error": {"code": "...", "message": "..."}, "id": 1}
Error codes: malformed_json, validation, bad_op, unknown_channel, body_too_large, rate_limited.
Every frame the server sends goes through the connection's bounded queue and one writer task,
so replies and updates keep their order; a client that lets the queue fill up is closed with
code 4001 (slow consumer).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from isoperp.api import strictjson, views
from isoperp.api.errors import ApiError
from isoperp.api.feed import SLOW_CONSUMER_CLOSE_CODE, Subscriber
from isoperp.api.limits import TokenBucket
from isoperp.api.state import ApiState

logger = logging.getLogger(__name__)

FIXED_CHANNELS = ("trades", "liquidations", "checkpoints")
MAX_CHANNELS_PER_OP = 32
OPS = ("subscribe", "unsubscribe", "ping")


def _dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


class FeedSocket:
    def __init__(self, websocket: WebSocket, state: ApiState) -> None:
        self.ws = websocket
        self.state = state
        self.sub: Subscriber = state.feed.subscriber()
        limits = state.limits
        self.bucket = TokenBucket(
            limits.ws_message_rate, limits.ws_message_burst, state.monotonic()
        )

    async def run(self) -> None:
        feed = self.state.feed
        feed.bind(asyncio.get_running_loop())
        await self.ws.accept()
        writer = asyncio.create_task(self._write())
        try:
            while not self.sub.dropped:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                self._handle(message)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            feed.remove(self.sub)
            if not writer.done():
                if self.sub.dropped:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(asyncio.shield(writer), timeout=1.0)
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await writer

    async def _write(self) -> None:
        try:
            while True:
                text = await self.sub.queue.get()
                if text is None:  # dropped as a slow consumer
                    await self.ws.close(code=SLOW_CONSUMER_CLOSE_CODE, reason="slow consumer")
                    return
                await self.ws.send_text(text)
        except (WebSocketDisconnect, RuntimeError):
            return

    def _reply(self, message: dict[str, Any]) -> None:
        if not self.sub.offer(_dumps(message)):
            self.state.feed.remove(self.sub)
            self.sub.drop()

    def _error(self, code: str, message: str, request_id: Any = None) -> None:
        body: dict[str, Any] = {"type": "error", "error": {"code": code, "message": message}}
        if request_id is not None:
            body["id"] = request_id
        self._reply(body)

    def _handle(self, message: Mapping[str, Any]) -> None:
        text = message.get("text")
        if text is None:
            raw = message.get("bytes") or b""
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                self._error("malformed_json", "frames must be UTF-8 JSON text")
                return
        if len(text.encode("utf-8", "surrogatepass")) > self.state.limits.ws_max_message_bytes:
            self._error("body_too_large", "message too large")
            return
        if self.bucket.take(self.state.monotonic()) > 0:
            self._error("rate_limited", "too many messages on this connection")
            return
        try:
            request = strictjson.loads(text)
        except strictjson.MalformedJson as exc:
            self._error("malformed_json", f"not valid JSON: {exc}")
            return
        if not isinstance(request, dict):
            self._error("validation", "a message must be a JSON object")
            return
        request_id = request.get("id")
        if request_id is not None and (
            isinstance(request_id, bool) or not isinstance(request_id, int | str)
        ):
            self._error("validation", "id must be a string or an integer")
            return
        try:
            self._op(request, request_id)
        except ApiError as exc:
            self._error(exc.code, exc.message, request_id)

    def _op(self, request: dict[str, Any], request_id: Any) -> None:
        op = request.get("op")
        if op not in OPS:
            raise ApiError("bad_op", f"op must be one of {', '.join(OPS)}")
        allowed = {"op", "id"} | ({"channels"} if op != "ping" else set())
        extra = set(request) - allowed
        if extra:
            raise ApiError("validation", f"unexpected fields: {', '.join(sorted(extra))}")
        echo = {} if request_id is None else {"id": request_id}
        if op == "ping":
            self._reply({"type": "pong", "time": self.state.now(), **echo})
            return
        channels = self._channels(request.get("channels"))
        feed = self.state.feed
        if op == "unsubscribe":
            feed.unsubscribe(self.sub, channels)
            self._reply({"type": "unsubscribed", "channels": channels, **echo})
            return
        feed.subscribe(self.sub, channels)
        self._reply({"type": "subscribed", "channels": channels, **echo})
        for channel in channels:
            if channel.startswith("book:"):
                self._book_snapshot(channel)

    def _channels(self, value: Any) -> list[str]:
        if (
            not isinstance(value, list)
            or not value
            or len(value) > MAX_CHANNELS_PER_OP
            or not all(isinstance(c, str) and len(c) <= 64 for c in value)
        ):
            raise ApiError(
                "validation", f"channels must be a list of 1 to {MAX_CHANNELS_PER_OP} names"
            )
        out: list[str] = []
        for name in value:
            canonical = self._canonical(name)
            if canonical not in out:
                out.append(canonical)
        return out

    def _canonical(self, name: str) -> str:
        if name in FIXED_CHANNELS:
            return name
        if name.startswith("book:"):
            try:
                market = views.resolve_market(self.state.ledger(), name[5:])
            except ApiError:
                pass
            else:
                return "book:" + views.market_meta(market)[0]
        known = [*FIXED_CHANNELS, *self._book_channels()]
        raise ApiError("unknown_channel", f"no channel {name!r} (channels: {', '.join(known)})")

    def _book_channels(self) -> list[str]:
        return ["book:" + views.market_meta(m)[0] for m in self.state.ledger().markets]

    def _book_snapshot(self, channel: str) -> None:
        ledger = self.state.ledger()
        market = views.resolve_market(ledger, channel[5:])
        view = views.book_view(
            market, self.state.book(market.market_id), BOOK_LEVELS, self.state.now()
        )
        self._reply({"type": "snapshot", "channel": channel, "data": views.payload(view)})


BOOK_LEVELS = 50
"""Levels per side in book snapshots (and in the bridge's book updates)."""
