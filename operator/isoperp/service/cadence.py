"""When the operator posts: every T seconds, or "every N fills or T seconds".

Plain (no N): every cycle, T seconds apart, posts what it has. With N: the operator looks every
``CADENCE_TICK_S``; a batch opens when a cycle first finds work it does not post (``deferred``),
and is posted as soon as it holds N fills (or serves a forced request, or is full: the service
decides those) or T seconds after it opened. The first cycle after a start is always due, and with
``post_empty`` an idle operator still posts every T seconds (checkpoints keep finality moving)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from isoperp.service.operator import CycleReport

CADENCE_TICK_S = 0.2  # how often a fill-count cadence looks at the journal


@dataclass(frozen=True, slots=True)
class CyclePlan:
    """What the next cycle may do: post an empty checkpoint; the fills a batch needs to post."""

    post_empty: bool
    min_fills: int
    due: bool


@dataclass
class Cadence:
    interval: float
    batch_fills: int | None = None
    post_empty: bool = False
    clock: Callable[[], float] = time.monotonic
    _opened: float | None = field(default=None, init=False)
    _last_post: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.interval <= 0 or (self.batch_fills is not None and self.batch_fills < 1):
            raise ValueError("interval must be > 0 and batch_fills >= 1")

    @property
    def tick(self) -> float:
        """Seconds to sleep between cycles."""
        return min(self.interval, CADENCE_TICK_S) if self.batch_fills else self.interval

    def describe(self) -> str:
        every = f"every {self.interval:g}s"
        return every + (f" or {self.batch_fills} fills" if self.batch_fills else "")

    def plan(self) -> CyclePlan:
        now = self.clock()
        if self.batch_fills is None or self._last_post is None:
            due = True
        else:
            opened_long_ago = self._opened is not None and now - self._opened >= self.interval
            idle_too_long = self.post_empty and now - self._last_post >= self.interval
            due = opened_long_ago or idle_too_long
        return CyclePlan(
            post_empty=self.post_empty and due,
            min_fills=0 if due else (self.batch_fills or 0),
            due=due,
        )

    def record(self, report: CycleReport) -> None:
        """Takes note of what the planned cycle did."""
        now = self.clock()
        if self._last_post is None or report.posted is not None:
            self._last_post = now
        if report.posted is not None:
            self._opened = None
        elif report.deferred and self._opened is None:
            self._opened = now
