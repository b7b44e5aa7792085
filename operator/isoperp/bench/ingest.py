"""Signed-order ingest (``isoperp bench ingest``): orders through signature verification, the
engine's margin pre-check, matching, and the ledger into a batch (ORDER/FILL/CANCEL records, the
state root after every record for the trace), rolling over to a new batch when one is full.

The workload is generated and signed up front from a seed (signing is the client's cost, not the
operator's) on the first market of the deployment's market list (``isoperp.chain.genesis``: the
devnet's BTC-USD unless a market file is given): 500 funded accounts with margin and an open
position; about 60% passive GTC orders a few ticks behind the mid (the market's genesis mark),
20% signed cancels of the account's own resting orders, 20% IOC orders that cross. Each operation
is timed with ``perf_counter_ns``; the figures are ``ops_per_s`` over the whole run and the
latency percentiles of single operations."""

from __future__ import annotations

import gc
import platform
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from eth_account import Account

from isoperp.batch.builder import BatchBuilder, BatchFull
from isoperp.chain.genesis import DEFAULT_MARKETS
from isoperp.errors import TransitionRejected
from isoperp.exchange.engine import Engine
from isoperp.ledger.ledger import Ledger
from isoperp.ledger.markets import DEVNET_OPERATOR, DEVNET_ORACLE
from isoperp.ledger.model import Market
from isoperp.ledger.transitions import CancelOrder, Deposit, Fill, MarginTransfer, PlaceOrder
from isoperp.protocol.constants import ORDER_SLOTS, TIF_GTC, TIF_IOC
from isoperp.protocol.header import CheckpointHeader
from isoperp.protocol.signing import Domain, sign_request

DOMAIN = Domain(31337, "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512")
NOW = 1_700_000_000
USDC = 10**6


@dataclass(frozen=True)
class IngestReport:
    ops: int
    ops_per_s: float
    p50_us: float
    p99_us: float
    orders: int
    cancels: int
    fills: int
    rejected: dict[str, int]
    transitions: int
    batches: int
    python: str

    def as_dict(self) -> dict[str, object]:
        return {
            "bench": "ingest",
            "ops": self.ops,
            "ops_per_s": round(self.ops_per_s),
            "p50_us": round(self.p50_us, 2),
            "p99_us": round(self.p99_us, 2),
            "orders": self.orders,
            "cancels": self.cancels,
            "fills": self.fills,
            "rejected": dict(self.rejected),
            "transitions": self.transitions,
            "batches": self.batches,
            "python": self.python,
        }


@dataclass(frozen=True, slots=True)
class _Grid:
    """Where the workload trades: a market, its mid on the tick grid, its price tick, a price
    step (in ticks) that keeps 40 passive levels above zero, and a lot that is on the size step
    and at least the minimum size."""

    market_id: int
    mid: int
    tick: int
    step: int
    lot: int

    @classmethod
    def of(cls, market: Market) -> _Grid:
        tick = market.price_tick
        mid = max(tick, market.mark_price // tick * tick)
        step = max(1, min(10, (mid // tick - 1) // 50))
        lot = market.size_step * max(1, -(-market.min_size // market.size_step))
        return cls(market.market_id, mid, tick, step, lot)


def _setup(
    accounts: int, markets: Sequence[Market]
) -> tuple[Ledger, BatchBuilder, list[bytes], _Grid]:
    ledger = Ledger.genesis(markets, DOMAIN, DEVNET_ORACLE, fee_recipient=DEVNET_OPERATOR)
    grid = _Grid.of(markets[0])
    m = grid.market_id
    keys = [bytes(Account.from_key((i + 1).to_bytes(32, "big")).key) for i in range(accounts)]
    for i, key in enumerate(keys):
        owner = Account.from_key(key).address
        ledger.apply(Deposit(i, i, owner, 1_000_000 * USDC, NOW))
        ledger.apply(sign_request(key, DOMAIN, MarginTransfer(i, m, 500_000 * USDC, 0, b"")))
    size = 100_000 * grid.lot
    for i in range(0, accounts - 1, 2):  # open positions (nonce 0) so no account ever goes flat
        for who, is_buy in ((i, False), (i + 1, True)):
            order = PlaceOrder(who, m, is_buy, grid.mid, size, TIF_GTC, 0, 0, 0, b"")
            ledger.apply(sign_request(keys[who], DOMAIN, order))
        ledger.apply(Fill(m, i, 0, i + 1, 0, size, grid.mid, NOW))
    header = CheckpointHeader.genesis(ledger.state_root)
    return ledger, BatchBuilder(ledger, header), keys, grid


def _workload(
    keys: list[bytes], ops: int, seed: int, grid: _Grid
) -> list[PlaceOrder | CancelOrder]:
    rng = random.Random(seed)
    nonces = [0] * len(keys)
    live: list[list[int]] = [[] for _ in keys]
    out: list[PlaceOrder | CancelOrder] = []
    mid, m, unit = grid.mid, grid.market_id, grid.step * grid.tick
    for _ in range(ops):
        account = rng.randrange(len(keys))
        roll = rng.random()
        if (roll < 0.2 and live[account]) or len(live[account]) >= ORDER_SLOTS - 1:
            nonce = live[account].pop(rng.randrange(len(live[account])))
            out.append(sign_request(keys[account], DOMAIN, CancelOrder(account, nonce, b"")))
            continue
        nonces[account] += 1
        nonce = nonces[account]
        is_buy = rng.random() < 0.5
        size = rng.choice((1, 2, 5, 10, 20)) * 100 * grid.lot
        if roll < 0.8:
            offset = rng.randrange(1, 40) * unit
            price = mid - offset if is_buy else mid + offset
            order = PlaceOrder(account, m, is_buy, price, size, TIF_GTC, 0, nonce, 0, b"")
            live[account].append(nonce)
        else:
            price = mid + 50 * unit if is_buy else mid - 50 * unit
            order = PlaceOrder(account, m, is_buy, price, size, TIF_IOC, 0, nonce, 0, b"")
        out.append(sign_request(keys[account], DOMAIN, order))
    return out


def run_ingest_bench(
    *,
    ops: int = 20_000,
    accounts: int = 500,
    seed: int = 1,
    progress: Callable[[int], None] | None,
    markets: Sequence[Market] = DEFAULT_MARKETS,
) -> IngestReport:
    """Runs the ingest bench on the first of ``markets`` (the genesis market list)."""
    ledger, builder, keys, grid = _setup(accounts, markets)
    work = _workload(keys, ops, seed, grid)
    engine = Engine(ledger, builder, DOMAIN, now=NOW)
    latencies: list[int] = []
    fills = batches = transitions = 0
    rejected: Counter[str] = Counter()
    orders = sum(isinstance(w, PlaceOrder) for w in work)
    gc.collect()
    gc.freeze()
    clock = time.perf_counter_ns
    start = clock()
    for i, request in enumerate(work):
        t0 = clock()
        for _attempt in range(2):
            try:
                if isinstance(request, PlaceOrder):
                    fills += len(engine.submit(request).fills)
                else:
                    engine.cancel(request)
            except BatchFull:  # seal the full batch and retry the request in a new one
                transitions += len(engine.builder)
                sealed = engine.builder.seal(timestamp=NOW)
                engine.builder = BatchBuilder(ledger, sealed.header)
                batches += 1
                continue
            except TransitionRejected as exc:  # e.g. a cancel that lost the race to a fill
                rejected[exc.reason] += 1
            break
        latencies.append(clock() - t0)
        if progress is not None and i % 1000 == 999:
            progress(i + 1)
    elapsed = clock() - start
    gc.unfreeze()
    transitions += len(engine.builder)
    batches += 1
    latencies.sort()
    return IngestReport(
        ops=len(work),
        ops_per_s=len(work) / (elapsed / 1e9),
        p50_us=statistics.median(latencies) / 1e3,
        p99_us=latencies[int(len(latencies) * 0.99)] / 1e3,
        orders=orders,
        cancels=len(work) - orders,
        fills=fills,
        rejected=rejected,
        transitions=transitions,
        batches=batches,
        python=platform.python_version(),
    )
