"""Abuse limits: token buckets per key, and the ASGI middleware that enforces the per-client
rate limit and the body size limit before a request reaches a route (so nothing parses a body
that is too large, and a flood costs one dictionary look-up per request)."""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from isoperp.api.errors import error_body, status_of

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]
Asgi = Callable[[Scope, Receive, Send], Any]


class TokenBucket:
    """``burst`` tokens, refilled at ``rate`` per second (of the injected clock)."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = now

    def take(self, now: float) -> float:
        """Takes one token: 0.0 if there was one, else the seconds until there is."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate if self.rate > 0 else math.inf


class RateLimiter:
    """Token buckets by key (client address, account id), at most ``max_keys`` of them: the
    least recently used are forgotten first (a forgotten key starts with a full bucket, which
    only ever errs towards letting a request through). Thread-safe."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float], *, max_keys: int = 100_000
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: OrderedDict[Hashable, TokenBucket] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: Hashable) -> float:
        """0.0 if ``key`` may go ahead (a token is taken), else the seconds to wait."""
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
                if len(self._buckets) > self.max_keys:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
            return bucket.take(now)


def retry_after(wait: float) -> str:
    return str(max(1, math.ceil(wait))) if math.isfinite(wait) else "3600"


async def send_error(
    send: Send, code: str, message: str, headers: dict[str, str] | None = None
) -> None:
    """A complete JSON error response, straight on the ASGI channel."""
    body = json.dumps(error_body(code, message)).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status_of(code), "headers": raw})
    await send({"type": "http.response.body", "body": body})


def client_key(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class LimitsMiddleware:
    """Per-client rate limit on every HTTP request and WebSocket connect, then (HTTP) the body
    size limit: a declared ``Content-Length`` above it is refused unread, a streamed body is
    refused as soon as it grows past it. The accepted body is buffered and replayed to the app."""

    def __init__(self, app: Asgi, *, limiter: RateLimiter, max_body_bytes: int) -> None:
        self.app = app
        self.limiter = limiter
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        wait = self.limiter.take(client_key(scope))
        if wait > 0:
            if kind == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": "rate_limited"})
                return
            await send_error(
                send,
                "rate_limited",
                "too many requests from this address",
                {"Retry-After": retry_after(wait)},
            )
            return
        if kind == "websocket":
            await self.app(scope, receive, send)
            return
        body = await self._read_body(scope, receive, send)
        if body is None:
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            message: Message = await receive()
            return message

        await self.app(scope, replay, send)

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        limit = self.max_body_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await send_error(
                    send, "body_too_large", f"request bodies are limited to {limit} bytes"
                )
                return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks)  # disconnected: the app sees an empty body and stops
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await send_error(
                    send, "body_too_large", f"request bodies are limited to {limit} bytes"
                )
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
