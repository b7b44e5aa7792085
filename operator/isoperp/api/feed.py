"""The WebSocket feed hub: channels, subscribers with bounded queues, thread-safe publishing.

``Feed.publish(channel, payload)`` may be called from any thread (the operator cycle runs in its
own): messages are serialized once, queued, and handed to the event loop, which delivers them to
each subscriber of the channel. A subscriber whose queue is full (a consumer that does not keep
up) is dropped: it stops receiving and its connection is closed with code 4001, so one slow
client can never hold memory or the publisher back.

Channels: ``book:<SYMBOL>``, ``trades``, ``liquidations``, ``checkpoints``. Every delivered
message is ``{"type": "update", "channel": ..., "data": payload}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import deque
from collections.abc import Iterable
from typing import Any

logger = logging.getLogger(__name__)

SLOW_CONSUMER_CLOSE_CODE = 4001


class Subscriber:
    """One WebSocket connection's queue of serialized messages (event loop thread only)."""

    def __init__(self, queue_size: int) -> None:
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=queue_size)
        self.channels: set[str] = set()
        self.dropped = False

    def offer(self, message: str) -> bool:
        """Queues ``message``; False (and nothing queued) when the queue is full."""
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            return False
        return True

    def drop(self) -> None:
        """Stops delivery: the queue is emptied and ends with ``None`` (the writer closes)."""
        self.dropped = True
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)


def update_message(channel: str, payload: Any) -> str:
    return json.dumps(
        {"type": "update", "channel": channel, "data": payload}, separators=(",", ":")
    )


class Feed:
    """Pub/sub hub between the operator (publishers, any thread) and WebSocket subscribers."""

    def __init__(self, *, queue_size: int = 256) -> None:
        self.queue_size = queue_size
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: deque[tuple[str, str]] = deque()
        self._scheduled = False
        self._channels: dict[str, set[Subscriber]] = {}
        self.published = 0
        self.delivered = 0
        self.dropped = 0

    # -- publishing (any thread) ----------------------------------------------------------------

    def publish(self, channel: str, payload: Any) -> None:
        """Sends ``payload`` (JSON-serializable) to the channel's subscribers. Never blocks."""
        self.publish_many([(channel, payload)])

    def publish_many(self, items: Iterable[tuple[str, Any]]) -> None:
        """Publishes several messages at once; they are delivered together, in order."""
        messages = [(channel, update_message(channel, payload)) for channel, payload in items]
        if not messages:
            return
        with self._lock:
            self.published += len(messages)
            loop = self._loop
            if loop is None:
                return  # nobody has ever subscribed: nothing to deliver
            self._pending.extend(messages)
            if self._scheduled:
                return
            self._scheduled = True
        try:
            loop.call_soon_threadsafe(self._flush)
        except RuntimeError:  # the loop was closed (server stopped)
            with self._lock:
                self._loop = None
                self._pending.clear()
                self._scheduled = False

    # -- event loop side --------------------------------------------------------------------------

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Delivers on ``loop`` from now on (the app calls this from its running loop)."""
        with self._lock:
            if self._loop is not loop:
                self._loop = loop
                self._pending.clear()
                self._scheduled = False
                self._channels = {}

    def _flush(self) -> None:
        with self._lock:
            batch = list(self._pending)
            self._pending.clear()
            self._scheduled = False
        for channel, message in batch:
            for sub in list(self._channels.get(channel, ())):
                if sub.offer(message):
                    self.delivered += 1
                else:
                    logger.info("dropping a slow feed subscriber of %s", channel)
                    self.remove(sub)
                    sub.drop()
                    self.dropped += 1

    def subscriber(self) -> Subscriber:
        return Subscriber(self.queue_size)

    def subscribe(self, sub: Subscriber, channels: Iterable[str]) -> None:
        for channel in channels:
            self._channels.setdefault(channel, set()).add(sub)
            sub.channels.add(channel)

    def unsubscribe(self, sub: Subscriber, channels: Iterable[str]) -> None:
        for channel in channels:
            subs = self._channels.get(channel)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._channels[channel]
            sub.channels.discard(channel)

    def remove(self, sub: Subscriber) -> None:
        self.unsubscribe(sub, list(sub.channels))

    def subscriber_count(self, channel: str | None = None) -> int:
        if channel is not None:
            return len(self._channels.get(channel, ()))
        return len({s for subs in self._channels.values() for s in subs})
