"""State-root updates for fills (``isoperp bench tree``): each fill is applied to the ledger and
the state root recomputed right after it, as the batch builder does for the trace of
intermediate roots.

Setup (untimed): 1,000 funded accounts with margin in BTC-USD, each with one large resting sell
and one large buy registered in the state, and an open position of 10 BTC so that no timed fill
closes it. Timed: fills between random pairs at one price (maker sells, taker buys, then the
reverse, so positions stay small), each followed by ``state_root``. Reported: fills/s for apply
+ root, and separately the time of the root alone."""

from __future__ import annotations

import gc
import platform
import random
import statistics
import time
from dataclasses import dataclass

from eth_account import Account

from isoperp.chain.genesis import DEFAULT_MARKETS
from isoperp.ledger.ledger import Ledger
from isoperp.ledger.markets import DEVNET_OPERATOR, DEVNET_ORACLE
from isoperp.ledger.transitions import Deposit, Fill, MarginTransfer, PlaceOrder
from isoperp.protocol.constants import TIF_GTC
from isoperp.protocol.signing import Domain, sign_request

DOMAIN = Domain(31337, "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512")
PRICE = 600_000
NOW = 1_700_000_000
USDC = 10**6
BUY_SLOT, SELL_SLOT = 1, 2


@dataclass(frozen=True)
class TreeReport:
    fills: int
    ops_per_s: float
    p50_us: float
    p99_us: float
    root_p50_us: float
    leaves: int
    python: str

    def as_dict(self) -> dict[str, object]:
        return {
            "bench": "tree",
            "fills": self.fills,
            "ops_per_s": round(self.ops_per_s),
            "p50_us": round(self.p50_us, 2),
            "p99_us": round(self.p99_us, 2),
            "root_p50_us": round(self.root_p50_us, 2),
            "leaves": self.leaves,
            "python": self.python,
        }


def _setup(accounts: int) -> Ledger:
    ledger = Ledger.genesis(
        DEFAULT_MARKETS, DOMAIN, DEVNET_ORACLE, fee_recipient=DEVNET_OPERATOR
    )
    for i in range(accounts):
        key = (i + 1).to_bytes(32, "big")
        owner = Account.from_key(key).address
        ledger.apply(Deposit(i, i, owner, 1_000_000 * USDC, NOW))
        ledger.apply(sign_request(key, DOMAIN, MarginTransfer(i, 0, 500_000 * USDC, 0, b"")))
        for slot, is_buy in ((BUY_SLOT, True), (SELL_SLOT, False)):
            order = PlaceOrder(i, 0, is_buy, PRICE, 10**12, TIF_GTC, 0, slot, 0, b"")
            ledger.apply(sign_request(key, DOMAIN, order))
    for i in range(0, accounts - 1, 2):  # open positions so later small fills never flatten one
        ledger.apply(Fill(0, i, SELL_SLOT, i + 1, BUY_SLOT, 1_000_000, PRICE, NOW))
    ledger.state_root  # noqa: B018 - flush setup hashing before timing
    return ledger


def run_tree_bench(*, fills: int = 20_000, accounts: int = 1_000, seed: int = 1) -> TreeReport:
    ledger = _setup(accounts)
    rng = random.Random(seed)
    work = []
    for i in range(fills):
        maker = rng.randrange(accounts)
        taker = (maker + 1 + rng.randrange(accounts - 1)) % accounts
        if i % 2:  # alternate directions so positions stay small
            maker, taker = taker, maker
            work.append(Fill(0, maker, BUY_SLOT, taker, SELL_SLOT, 100, PRICE, NOW))
        else:
            work.append(Fill(0, maker, SELL_SLOT, taker, BUY_SLOT, 100, PRICE, NOW))
    latencies: list[int] = []
    roots: list[int] = []
    clock = time.perf_counter_ns
    gc.collect()
    gc.freeze()
    start = clock()
    for fill in work:
        t0 = clock()
        ledger.apply(fill)
        t1 = clock()
        ledger.state_root  # noqa: B018 - the root after every fill, as the trace needs
        t2 = clock()
        latencies.append(t2 - t0)
        roots.append(t2 - t1)
    elapsed = clock() - start
    gc.unfreeze()
    latencies.sort()
    return TreeReport(
        fills=fills,
        ops_per_s=fills / (elapsed / 1e9),
        p50_us=statistics.median(latencies) / 1e3,
        p99_us=latencies[int(len(latencies) * 0.99)] / 1e3,
        root_p50_us=statistics.median(roots) / 1e3,
        leaves=sum(1 for _ in ledger.leaves()),
        python=platform.python_version(),
    )
