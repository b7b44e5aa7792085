"""Throughput and latency of the order book on a seeded mixed workload (``isoperp bench matching``).

The workload is generated up front from a seed, so every run replays the same operations on the
same book. A warm-up of passive orders builds the book; then come about 40% passive limit orders
(GTC, 10% post-only, 20% with an expiry) placed a few ticks behind a slowly drifting mid on
either side, 40% cancels of earlier passive orders (some filled meanwhile: the cancel then finds
nothing, as in a real feed), 20% taker orders that cross the spread (mostly IOC, some market
orders, GTC and FOK), and one ``expire(now)`` per simulated second. Orders come from 1,000
accounts, so self-trade prevention happens but rarely. Orders are pre-verified: no signatures, no
ledger (``accept`` is None).

Two passes replay the same operations on fresh books after the same untimed warm-up:
- throughput: one ``perf_counter_ns`` around the whole loop, three times -> ``ops_per_s`` (median);
- latency: a ``perf_counter_ns`` pair around every operation -> percentiles (the timer's own
  cost, about 0.1 us, is inside these figures).
The generated workload is moved out of the collector's reach (``gc.freeze``) before timing, so the
collector only walks what the book itself allocates.
"""

from __future__ import annotations

import gc
import platform
import random
import statistics
import time
from dataclasses import dataclass

from isoperp.matching import IncomingOrder, OrderBook, OrderRejected, TimeInForce

MID = 100_000  # ticks
ACCOUNTS = 1_000
START_TIME = 1_700_000_000
OPS_PER_SECOND = 1_000  # simulated clock: ``now`` advances one second every this many operations

CANCEL, PLACE, EXPIRE = 0, 1, 2
Op = tuple[int, "IncomingOrder | tuple[int, int] | None", int]
"""(CANCEL, key, now) | (PLACE, order, now) | (EXPIRE, None, now)."""


@dataclass(frozen=True)
class Workload:
    warmup: list[Op]
    timed: list[Op]


class _Generator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.nonces = [0] * ACCOUNTS
        self.cancellable: list[tuple[int, int]] = []
        self.mid = MID

    def _key(self) -> tuple[int, int]:
        account = self.rng.randrange(ACCOUNTS)
        nonce = self.nonces[account]
        self.nonces[account] = nonce + 1
        return (account, nonce)

    def passive(self, now: int) -> Op:
        """A GTC 1..~50 ticks behind the mid (denser near the top); 10% post-only, 20% expire."""
        rng = self.rng
        key = self._key()
        is_buy = rng.random() < 0.5
        offset = 1 + int(rng.expovariate(1 / 8))
        price = self.mid - offset if is_buy else self.mid + offset
        size = 1 + int(rng.expovariate(1 / 10))
        expiry = now + rng.randrange(30, 600) if rng.random() < 0.2 else 0
        post_only = rng.random() < 0.1
        self.cancellable.append(key)
        order = IncomingOrder(
            key, key[0], is_buy, price, size, TimeInForce.GTC, post_only, False, expiry
        )
        return (PLACE, order, now)

    def aggressive(self, now: int) -> Op:
        """Through the spread by up to 8 ticks: 75% IOC, 10% market, 10% GTC, 5% FOK."""
        rng = self.rng
        key = self._key()
        is_buy = rng.random() < 0.5
        size = 1 + int(rng.expovariate(1 / 6))
        depth = 1 + rng.randrange(8)
        price = self.mid + depth if is_buy else self.mid - depth
        kind = rng.random()
        tif = TimeInForce.IOC
        if kind < 0.10:
            price = self.mid + MID // 20 if is_buy else self.mid - MID // 20  # market: 5% away
        elif kind < 0.20:
            tif = TimeInForce.GTC
        elif kind < 0.25:
            tif = TimeInForce.FOK
        return (PLACE, IncomingOrder(key, key[0], is_buy, price, size, tif), now)

    def cancel(self, now: int) -> Op:
        """A random earlier passive order (it may have filled meanwhile)."""
        pool = self.cancellable
        j = self.rng.randrange(len(pool))
        pool[j], pool[-1] = pool[-1], pool[j]
        return (CANCEL, pool.pop(), now)


def build_workload(ops: int, warmup: int, seed: int) -> Workload:
    """A warm-up of ``warmup`` passive orders, then ``ops`` mixed operations: 40% cancels, 40%
    passive orders, 20% aggressive ones, one ``expire`` per simulated second; the mid drifts by
    a tick now and then. Deterministic in ``seed``."""
    gen = _Generator(seed)
    rng = gen.rng
    warm = [gen.passive(START_TIME) for _ in range(warmup)]
    timed: list[Op] = []
    now = START_TIME
    while len(timed) < ops:
        if len(timed) % OPS_PER_SECOND == OPS_PER_SECOND - 1:
            now += 1
            timed.append((EXPIRE, None, now))
            continue
        roll = rng.random()
        if roll < 0.01:
            gen.mid += 1 if roll < 0.005 else -1
        if roll < 0.40 and gen.cancellable:
            timed.append(gen.cancel(now))
        elif roll < 0.80:
            timed.append(gen.passive(now))
        else:
            timed.append(gen.aggressive(now))
    return Workload(warm, timed)


@dataclass
class Counts:
    places: int = 0
    cancels: int = 0
    cancelled: int = 0
    expired: int = 0
    fills: int = 0
    rejected: int = 0


def _replay(book: OrderBook, ops: list[Op], counts: Counts) -> None:
    place = book.place
    cancel = book.cancel
    fills = rejected = places = cancels = cancelled = 0
    for kind, arg, now in ops:
        if kind == PLACE:
            places += 1
            try:
                fills += len(place(arg, now=now).fills)  # type: ignore[arg-type]
            except OrderRejected:
                rejected += 1
        elif kind == CANCEL:
            cancels += 1
            if cancel(arg) is not None:  # type: ignore[arg-type]
                cancelled += 1
        else:
            counts.expired += len(book.expire(now))
    counts.places += places
    counts.cancels += cancels
    counts.cancelled += cancelled
    counts.fills += fills
    counts.rejected += rejected


def _replay_timed(book: OrderBook, ops: list[Op], latencies: list[int]) -> int:
    """Replay ``ops`` timing each one into ``latencies``; returns the number of rejections."""
    place = book.place
    cancel = book.cancel
    clock = time.perf_counter_ns
    rejected = 0
    for i, (kind, arg, now) in enumerate(ops):
        t0 = clock()
        if kind == PLACE:
            try:
                place(arg, now=now)  # type: ignore[arg-type]
            except OrderRejected:
                rejected += 1
        elif kind == CANCEL:
            cancel(arg)  # type: ignore[arg-type]
        else:
            book.expire(now)
        latencies[i] = clock() - t0
    return rejected


def _fresh_book(workload: Workload) -> OrderBook:
    book = OrderBook(0, price_tick=1, size_step=1, min_size=1)
    _replay(book, workload.warmup, Counts())
    return book


def _percentile(sorted_ns: list[int], q: float) -> float:
    if not sorted_ns:
        return 0.0
    index = min(len(sorted_ns) - 1, int(q * len(sorted_ns)))
    return sorted_ns[index] / 1_000


def run_matching_bench(
    ops: int = 200_000, warmup: int = 20_000, seed: int = 1, repeat: int = 3
) -> dict[str, object]:
    """Run the throughput pass ``repeat`` times (``ops_per_s`` is the median, the machine being
    noisy) and the latency pass once; return the figures as one flat dict (JSON-ready)."""
    workload = build_workload(ops, warmup, seed)
    gc.collect()
    gc.freeze()  # the workload only: each book's own objects stay tracked, as in production
    try:
        runs: list[int] = []
        for _ in range(max(1, repeat)):
            book = _fresh_book(workload)
            counts = Counts()
            start = time.perf_counter_ns()
            _replay(book, workload.timed, counts)
            runs.append(time.perf_counter_ns() - start)
            resting, levels = len(book), book.depth(1_000_000)
            del book
            gc.collect()
        book = _fresh_book(workload)
        latencies = [0] * ops
        _replay_timed(book, workload.timed, latencies)
        del book
    finally:
        gc.unfreeze()
    elapsed = statistics.median(runs)
    by_kind: dict[int, list[int]] = {PLACE: [], CANCEL: []}
    for (kind, _, _), ns in zip(workload.timed, latencies, strict=True):
        if kind in by_kind:
            by_kind[kind].append(ns)
    for values in by_kind.values():
        values.sort()
    places, cancels = by_kind[PLACE], by_kind[CANCEL]
    latencies.sort()
    return {
        "benchmark": "matching",
        "orders": ops,
        "warmup": warmup,
        "seed": seed,
        "ops_per_s": round(ops / (elapsed / 1e9)),
        "ops_per_s_runs": [round(ops / (ns / 1e9)) for ns in runs],
        "elapsed_s": round(elapsed / 1e9, 4),
        "p50_us": _percentile(latencies, 0.50),
        "p90_us": _percentile(latencies, 0.90),
        "p99_us": _percentile(latencies, 0.99),
        "p999_us": _percentile(latencies, 0.999),
        "max_us": latencies[-1] / 1_000,
        "place_p50_us": _percentile(places, 0.50),
        "place_p99_us": _percentile(places, 0.99),
        "place_mean_us": round(sum(places) / max(1, len(places)) / 1_000, 3),
        "cancel_p50_us": _percentile(cancels, 0.50),
        "cancel_p99_us": _percentile(cancels, 0.99),
        "places": counts.places,
        "cancels": counts.cancels,
        "cancels_hit": counts.cancelled,
        "expired": counts.expired,
        "fills": counts.fills,
        "rejected": counts.rejected,
        "resting_at_end": resting,
        "levels_at_end": [len(levels[0]), len(levels[1])],
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
    }
