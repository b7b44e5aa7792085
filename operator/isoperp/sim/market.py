"""The market simulator (`isoperp sim`): traders that use the real API with real signatures.

- The oracle walks the BTC-USD mark price randomly (optionally one flash crash) and signs each
  price with the devnet oracle key; prices go into the operator's journal as the oracle feed does.
- Market makers keep one bid and one ask around the mark (post-only GTC, re-quoted each step:
  cancel, then place).
- Takers send IOC orders of random size, now and then at high leverage, so that a crash liquidates
  someone.

Every order, cancel and margin move is an EIP-712-signed request posted to the operator's HTTP API;
rejections come back with their reason codes and are counted, never hidden.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount
from pydantic import BaseModel

from isoperp.api import models
from isoperp.devnet import devnet_account
from isoperp.ledger.transitions import CancelOrder, MarginTransfer, PlaceOrder, PriceUpdate
from isoperp.protocol.constants import FLAG_POST_ONLY, TIF_GTC, TIF_IOC
from isoperp.protocol.signing import Domain, sign_request
from isoperp.service.inbox import Inbox

logger = logging.getLogger(__name__)

BTC = 0
ORACLE_INDEX = 9
USDC = 10**6


@dataclass(frozen=True)
class SimConfig:
    makers: tuple[int, ...] = (1, 2)  # devnet account indices
    takers: tuple[int, ...] = (3, 4, 5, 6)
    start_price: int = 600_000  # ticks ($60,000)
    volatility_ppm: int = 2_000  # per step, standard deviation of the random walk
    spread_ticks: int = 50
    quote_size: int = 20_000  # lots (0.2 BTC)
    crash_at_step: int | None = None
    crash_ppm: int = 300_000
    seed: int = 1


@dataclass
class SimStats:
    steps: int = 0
    orders: int = 0
    cancels: int = 0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    prices: list[tuple[int, int]] = field(default_factory=list)  # (chain time, mark ticks)


_MODELS = {
    PlaceOrder: models.OrderRequest,
    CancelOrder: models.CancelRequest,
    MarginTransfer: models.MarginRequest,
}


@cache
def _string_fields(model: type[BaseModel]) -> frozenset[str]:
    """Fields the API takes as decimal strings (u64/u128/i128: beyond JavaScript's 2^53)."""
    props = model.model_json_schema(by_alias=True)["properties"]
    return frozenset(name for name, p in props.items() if p.get("type") == "string")


def _body(request: Any) -> dict[str, Any]:
    """The API's JSON for a signed request: camelCase fields, big integers as decimal strings,
    the signature as 0x hex (the shapes of ``isoperp.api.models``)."""
    strings = _string_fields(_MODELS[type(request)])
    out: dict[str, Any] = {}
    for name in request.__slots__:
        value = getattr(request, name)
        parts = name.split("_")
        key = parts[0] + "".join(p.title() for p in parts[1:])
        if isinstance(value, bytes):
            out[key] = "0x" + value.hex()
        elif key in strings and not isinstance(value, bool):
            out[key] = str(value)
        else:
            out[key] = value
    return out


class Trader:
    """One simulated account talking to the API."""

    def __init__(self, index: int, account_id: int, domain: Domain, http: httpx.Client) -> None:
        self.key: LocalAccount = devnet_account(index)
        self.account_id = account_id
        self.domain = domain
        self.http = http
        self.nonce = 0
        self.resting: list[int] = []

    def post(self, path: str, request: Any, stats: SimStats) -> bool:
        signed = sign_request(bytes(self.key.key), self.domain, request)
        reply = self.http.post(f"/v1/{path}", json=_body(signed))
        if reply.status_code == 202:
            stats.accepted += 1
            return True
        try:
            code = reply.json()["error"]["code"]
        except (ValueError, KeyError, TypeError):
            code = f"http_{reply.status_code}"
        stats.rejected[code] += 1
        return False

    def order(
        self, is_buy: bool, price: int, size: int, tif: int, flags: int, stats: SimStats
    ) -> int | None:
        self.nonce += 1
        stats.orders += 1
        o = PlaceOrder(self.account_id, BTC, is_buy, price, size, tif, flags, self.nonce, 0, b"")
        return self.nonce if self.post("orders", o, stats) else None

    def cancel_all(self, stats: SimStats) -> None:
        for nonce in self.resting:
            stats.cancels += 1
            self.post("cancels", CancelOrder(self.account_id, nonce, b""), stats)
        self.resting = []


class MarketSim:
    """Drives makers, takers and the oracle; ``step(now)`` is one simulated second."""

    def __init__(
        self,
        http: httpx.Client,
        journal: Callable[[], Inbox],
        domain: Domain,
        account_ids: dict[int, int],
        config: SimConfig,
    ) -> None:
        self.http = http
        self.journal = journal
        self.domain = domain
        self.config = config
        self.rng = random.Random(config.seed)
        self.price = config.start_price
        self.stats = SimStats()
        self.makers = [Trader(i, account_ids[i], domain, http) for i in config.makers]
        self.takers = [Trader(i, account_ids[i], domain, http) for i in config.takers]

    def fund_margin(self, usdc_per_trader: int) -> None:
        """Each trader moves margin into BTC-USD (the account nonce 0 request)."""
        for t in [*self.makers, *self.takers]:
            request = MarginTransfer(t.account_id, BTC, usdc_per_trader * USDC, 0, b"")
            t.post("margin", request, self.stats)

    def oracle(self, now: int) -> None:
        cfg = self.config
        if cfg.crash_at_step is not None and self.stats.steps == cfg.crash_at_step:
            self.price = self.price * (1_000_000 - cfg.crash_ppm) // 1_000_000
        else:
            move = int(self.rng.gauss(0, cfg.volatility_ppm))
            self.price = max(1_000, self.price * (1_000_000 + move) // 1_000_000)
        self.price -= self.price % 10  # on the $1 grid, comfortably on the tick
        update = PriceUpdate(BTC, self.price, now, b"")
        signed = sign_request(bytes(devnet_account(ORACLE_INDEX).key), self.domain, update)
        inbox = self.journal()
        try:
            inbox.submit(signed)
        finally:
            inbox.close()
        self.stats.prices.append((now, self.price))

    def step(self, now: int) -> None:
        self.oracle(now)
        cfg = self.config
        for m in self.makers:
            m.cancel_all(self.stats)
            for is_buy in (True, False):
                offset = cfg.spread_ticks * (1 + self.rng.randrange(3))
                price = self.price - offset if is_buy else self.price + offset
                nonce = m.order(is_buy, price, cfg.quote_size, TIF_GTC, FLAG_POST_ONLY, self.stats)
                if nonce is not None:
                    m.resting.append(nonce)
        for t in self.takers:
            if self.rng.random() < 0.5:
                continue
            is_buy = self.rng.random() < 0.5
            size = self.rng.choice((1_000, 2_000, 5_000, 10_000, 30_000))
            bound = self.price + 500 if is_buy else self.price - 500
            t.order(is_buy, bound, size, TIF_IOC, 0, self.stats)
        self.stats.steps += 1
