"""Signed-order ingest (``isoperp bench ingest``): orders through signature verification, the
engine's margin pre-check, matching, and the ledger into a batch (ORDER/FILL/CANCEL records, the
state root after every record for the trace), rolling over to a new batch when one is full.

The workload is generated and signed up front from a seed (signing is the client's cost, not the
operator's): 500 funded accounts with margin and an open position in BTC-USD; about 60% passive
GTC orders a few ticks behind the mid, 20% signed cancels of the account's own resting orders,
20% IOC orders that cross. Each operation is timed with ``perf_counter_ns``; the figures are
``ops_per_s`` over the whole run and the latency percentiles of single operations."""

from __future__ import annotations

import gc
import platform
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from eth_account import Account

from isoperp.batch.builder import BatchBuilder, BatchFull
from isoperp.errors import TransitionRejected
from isoperp.exchange.engine import Engine
from isoperp.ledger.ledger import Ledger
from isoperp.ledger.markets import DEVNET_MARKETS, DEVNET_OPERATOR, DEVNET_ORACLE
from isoperp.ledger.transitions import CancelOrder, Deposit, Fill, MarginTransfer, PlaceOrder
from isoperp.protocol.constants import ORDER_SLOTS, TIF_GTC, TIF_IOC
from isoperp.protocol.header import CheckpointHeader
from isoperp.protocol.signing import Domain, sign_request

DOMAIN = Domain(31337, "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512")
MID = 600_000  # BTC-USD ticks: $60,000
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


def _setup(accounts: int) -> tuple[Ledger, BatchBuilder, list[bytes]]:
    ledger = Ledger.genesis(DEVNET_MARKETS, DOMAIN, DEVNET_ORACLE, fee_recipient=DEVNET_OPERATOR)
    keys = [bytes(Account.from_key((i + 1).to_bytes(32, "big")).key) for i in range(accounts)]
    for i, key in enumerate(keys):
        owner = Account.from_key(key).address
        ledger.apply(Deposit(i, i, owner, 1_000_000 * USDC, NOW))
        ledger.apply(sign_request(key, DOMAIN, MarginTransfer(i, 0, 500_000 * USDC, 0, b"")))
    for i in range(0, accounts - 1, 2):  # open positions (nonce 0) so no account ever goes flat
        for who, is_buy in ((i, False), (i + 1, True)):
            order = PlaceOrder(who, 0, is_buy, MID, 100_000, TIF_GTC, 0, 0, 0, b"")
            ledger.apply(sign_request(keys[who], DOMAIN, order))
        ledger.apply(Fill(0, i, 0, i + 1, 0, 100_000, MID, NOW))
    return ledger, BatchBuilder(ledger, CheckpointHeader.genesis(ledger.state_root)), keys


def _workload(keys: list[bytes], ops: int, seed: int) -> list[PlaceOrder | CancelOrder]:
    rng = random.Random(seed)
    nonces = [0] * len(keys)
    live: list[list[int]] = [[] for _ in keys]
    out: list[PlaceOrder | CancelOrder] = []
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
        size = rng.choice((1, 2, 5, 10, 20)) * 100
        if roll < 0.8:
            offset = rng.randrange(1, 40) * 10
            price = MID - offset if is_buy else MID + offset
            order = PlaceOrder(account, 0, is_buy, price, size, TIF_GTC, 0, nonce, 0, b"")
            live[account].append(nonce)
        else:
            price = MID + 500 if is_buy else MID - 500
            order = PlaceOrder(account, 0, is_buy, price, size, TIF_IOC, 0, nonce, 0, b"")
        out.append(sign_request(keys[account], DOMAIN, order))
    return out


def run_ingest_bench(
    *, ops: int = 20_000, accounts: int = 500, seed: int = 1, progress: Callable[[int], None] | None
) -> IngestReport:
    ledger, builder, keys = _setup(accounts)
    work = _workload(keys, ops, seed)
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
