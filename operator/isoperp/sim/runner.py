"""Runs the market simulator against a live operator: funds the simulated traders on-chain, waits
for the operator to include them, moves their margin through the API, then steps once a second."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from isoperp.chain.contracts import System
from isoperp.demo import USDC, _deposit
from isoperp.devnet import devnet_account
from isoperp.errors import ConfigError
from isoperp.service.inbox import Inbox
from isoperp.sim.market import MarketSim, SimConfig, SimStats

logger = logging.getLogger(__name__)


@dataclass
class SimRun:
    sim: MarketSim
    stats: SimStats


def _account_ids(http: httpx.Client, indices: tuple[int, ...], timeout_s: float) -> dict[int, int]:
    """Waits until the operator has included every trader's deposit; their account ids."""
    deadline = time.monotonic() + timeout_s
    ids: dict[int, int] = {}
    while time.monotonic() < deadline:
        for i in indices:
            if i in ids:
                continue
            reply = http.get(f"/v1/accounts/{devnet_account(i).address}")
            if reply.status_code == 200:
                ids[i] = int(reply.json()["accountId"])
        if len(ids) == len(indices):
            return ids
        time.sleep(0.3)
    raise ConfigError("the operator did not include the simulator's deposits in time", code="sim")


def prepare(
    system: System,
    api_url: str,
    journal: Path,
    config: SimConfig,
    *,
    deposit_usdc: int = 100_000,
    margin_usdc: int = 20_000,
    timeout_s: float = 60,
) -> SimRun:
    http = httpx.Client(base_url=api_url, timeout=10)
    traders = (*config.makers, *config.takers)
    for i in traders:
        _deposit(system, devnet_account(i), deposit_usdc * USDC)
    ids = _account_ids(http, traders, timeout_s)
    sim = MarketSim(http, lambda: Inbox(journal), system.domain, ids, config)
    sim.fund_margin(margin_usdc)
    return SimRun(sim, sim.stats)


def run(
    prepared: SimRun,
    chain_time: Callable[[], int],
    *,
    steps: int,
    step_s: float = 1.0,
    progress: Callable[[SimStats], None] | None = None,
) -> SimStats:
    last = 0
    for _ in range(steps):
        started = time.monotonic()
        now = max(chain_time(), last + 1)
        prepared.sim.step(now)
        last = now
        if progress is not None:
            progress(prepared.stats)
        time.sleep(max(0.0, step_s - (time.monotonic() - started)))
    return prepared.stats
