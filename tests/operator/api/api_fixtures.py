"""A devnet-like exchange for the API tests: a real ledger with funded accounts, a journal in a
temporary directory, fake providers for the chain-side views, and helpers that sign requests as
the API expects them (JSON bodies)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account as EthAccount
from fastapi.testclient import TestClient

from isoperp.api import ApiLimits, ApiState, CheckpointView, Feed, ForcedRequestView, TradeView
from isoperp.api.app import create_app
from isoperp.api.state import Depth
from isoperp.ledger.ledger import Ledger
from isoperp.ledger.markets import DEVNET_MARKETS, DEVNET_OPERATOR, DEVNET_ORACLE
from isoperp.ledger.model import Market
from isoperp.ledger.transitions import (
    CancelOrder,
    Deposit,
    MarginTransfer,
    PlaceOrder,
    Withdraw,
)
from isoperp.protocol.signing import Domain, sign_request
from isoperp.service.inbox import Inbox

DOMAIN = Domain(31337, "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512")
NOW = 1_700_000_000
USDC = 10**6
BTC, ETH, GRID = 0, 1, 2

GRID_USD = Market(
    market_id=GRID,
    mark_price=1_000,
    mark_time=0,
    funding_index=0,
    funding_time=0,
    imf_ppm=50_000,
    mmf_ppm=30_000,
    notional_exp=0,
    maker_fee_ppm=100,
    taker_fee_ppm=500,
    min_size=10,
    size_step=5,
    price_tick=10,
    open_interest=0,
    symbol="GRID-USD",
)
"""A market with a coarse grid (tick 10, step 5, min size 10) for the grid rejections."""

ALICE, BOB, CAROL = 0, 1, 2
"""Alice and Bob have 10,000 USDC of margin in BTC-USD and GRID-USD; Carol has none."""


class Clock:
    """The rate limiters' clock: time moves only when a test says so."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@dataclass
class User:
    key: bytes
    account_id: int

    @property
    def address(self) -> str:
        return str(EthAccount.from_key(self.key).address)


def key_of(n: int) -> bytes:
    return (0xA11CE + n).to_bytes(32, "big")


@dataclass
class Exchange:
    """Ledger + journal + providers, and an app over them."""

    tmp: Path
    limits: ApiLimits = field(default_factory=ApiLimits)
    ledger: Ledger = field(init=False)
    users: list[User] = field(init=False)
    now: int = NOW
    clock: Clock = field(default_factory=Clock)
    feed: Feed = field(default_factory=Feed)
    books: dict[int, Depth] = field(default_factory=dict)
    trade_list: list[TradeView] = field(default_factory=list)
    checkpoint_list: list[CheckpointView] = field(default_factory=list)
    forced_list: list[ForcedRequestView] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ledger = Ledger.genesis(
            (*DEVNET_MARKETS, GRID_USD), DOMAIN, DEVNET_ORACLE, fee_recipient=DEVNET_OPERATOR
        )
        self.users = []
        for i in range(3):
            user = User(key_of(i), i)
            self.ledger.apply(Deposit(i, i, user.address, 100_000 * USDC, NOW - 100))
            self.users.append(user)
        for user in self.users[:2]:
            for market in (BTC, GRID):
                self.apply(
                    self.signed(
                        MarginTransfer(
                            user.account_id,
                            market,
                            10_000 * USDC,
                            self.ledger.account(user.account_id).nonce,
                            b"",
                        )
                    )
                )
        self.ledger.state_root  # noqa: B018  # a snapshot has its root computed

    # -- the app ------------------------------------------------------------------------------

    @property
    def journal_path(self) -> Path:
        return self.tmp / "journal.sqlite"

    def state(self) -> ApiState:
        return ApiState(
            ledger=lambda: self.ledger,
            checkpoints=lambda: list(self.checkpoint_list),
            inbox=lambda: Inbox(self.journal_path),
            domain=DOMAIN,
            book=lambda market_id: self.books.get(market_id, ([], [])),
            trades=self._trades,
            forced=lambda: list(self.forced_list),
            now=lambda: self.now,
            feed=self.feed,
            limits=self.limits,
            monotonic=self.clock,
        )

    def _trades(self, market_id: int | None, limit: int) -> list[TradeView]:
        out = [t for t in reversed(self.trade_list) if market_id in (None, t.market_id)]
        return out[:limit]

    @contextmanager
    def client(self) -> Iterator[TestClient]:
        with TestClient(create_app(self.state())) as client:
            yield client

    # -- the journal, read from the test's own connection --------------------------------------

    def journal(self) -> list[tuple[int, str, Any, str]]:
        inbox = Inbox(self.journal_path)
        try:
            return [(e.id, e.kind, e.request, e.status) for e in inbox.all()]
        finally:
            inbox.close()

    def mark(self, request_id: int, status: str, **kw: Any) -> None:
        inbox = Inbox(self.journal_path)
        try:
            inbox.update(
                [(request_id, status, kw.get("reason"), kw.get("seq"), None, kw.get("filled"))]
            )
        finally:
            inbox.close()

    # -- signing --------------------------------------------------------------------------------

    def signed(self, request: Any, key: bytes | None = None) -> Any:
        if key is None:
            owner = self.ledger.account(request.account_id).owner
            key = next(u.key for u in self.users if u.address == owner)
        return sign_request(key, DOMAIN, request)

    def apply(self, t: Any) -> Any:
        result = self.ledger.apply(t)
        self.ledger.state_root  # noqa: B018
        return result

    def order(
        self,
        who: int,
        *,
        market_id: int = BTC,
        is_buy: bool = True,
        price: int = 600_000,
        size: int = 100,
        tif: int = 0,
        flags: int = 0,
        nonce: int = 1,
        expiry: int = 0,
        key: bytes | None = None,
    ) -> PlaceOrder:
        o = PlaceOrder(who, market_id, is_buy, price, size, tif, flags, nonce, expiry, b"")
        return self.signed(o, key or self.users[who].key)

    def cancel(self, who: int, nonce: int, *, key: bytes | None = None) -> CancelOrder:
        return self.signed(CancelOrder(who, nonce, b""), key or self.users[who].key)

    def withdrawal(
        self,
        who: int,
        amount: int,
        *,
        nonce: int | None = None,
        recipient: str | None = None,
        key: bytes | None = None,
    ) -> Withdraw:
        if nonce is None:
            nonce = self.ledger.account(who).nonce
        w = Withdraw(who, recipient or self.users[who].address, amount, nonce, b"")
        return self.signed(w, key or self.users[who].key)

    def margin(
        self,
        who: int,
        amount: int,
        *,
        market_id: int = BTC,
        nonce: int | None = None,
        key: bytes | None = None,
    ) -> MarginTransfer:
        if nonce is None:
            nonce = self.ledger.account(who).nonce
        m = MarginTransfer(who, market_id, amount, nonce, b"")
        return self.signed(m, key or self.users[who].key)


# ------------------------------------------------------------------------- JSON bodies


def sig_hex(signature: bytes) -> str:
    return "0x" + signature.hex()


def body_of(request: Any) -> dict[str, Any]:
    """The API's JSON body of a signed transition."""
    if isinstance(request, PlaceOrder):
        return {
            "accountId": request.account_id,
            "marketId": request.market_id,
            "isBuy": request.is_buy,
            "price": str(request.price),
            "size": str(request.size),
            "timeInForce": request.time_in_force,
            "flags": request.flags,
            "nonce": str(request.nonce),
            "expiry": str(request.expiry),
            "signature": sig_hex(request.signature),
        }
    if isinstance(request, CancelOrder):
        return {
            "accountId": request.account_id,
            "nonce": str(request.nonce),
            "signature": sig_hex(request.signature),
        }
    if isinstance(request, Withdraw):
        return {
            "accountId": request.account_id,
            "recipient": request.recipient,
            "amount": str(request.amount),
            "nonce": str(request.nonce),
            "signature": sig_hex(request.signature),
        }
    if isinstance(request, MarginTransfer):
        return {
            "accountId": request.account_id,
            "marketId": request.market_id,
            "amount": str(request.amount),
            "nonce": str(request.nonce),
            "signature": sig_hex(request.signature),
        }
    raise TypeError(type(request).__name__)


PATH_OF = {
    PlaceOrder: "/v1/orders",
    CancelOrder: "/v1/cancels",
    Withdraw: "/v1/withdrawals",
    MarginTransfer: "/v1/margin",
}


def post(client: TestClient, request: Any, **overrides: Any) -> Any:
    """POSTs ``request`` (a signed transition) as JSON, with fields of the body overridden."""
    body = {**body_of(request), **overrides}
    return client.post(PATH_OF[type(request)], json=body)


def error_code(response: Any) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return str(body["error"]["code"])


def replace(request: Any, **changes: Any) -> Any:
    return dataclasses.replace(request, **changes)
