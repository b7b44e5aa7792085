"""Fixtures for the operator unit tests: a devnet ledger and a harness that signs requests."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest
from eth_account import Account as EthAccount

from isoperp.errors import TransitionRejected
from isoperp.ledger.ledger import (
    AppliedDeposit,
    AppliedFill,
    AppliedMarginTransfer,
    AppliedWithdraw,
    Ledger,
)
from isoperp.ledger.markets import DEVNET_MARKETS
from isoperp.ledger.model import Market
from isoperp.ledger.transitions import Deposit, Fill, MarginTransfer, Transition, Withdraw
from isoperp.protocol.signing import Domain, request_digest, sign_digest

DOMAIN = Domain(chain_id=31337, verifying_contract="0x5FbDB2315678afecb367f032d93F642f64180aa3")


class User:
    """A key pair; ``account_id`` is filled in by the first deposit."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.address: str = EthAccount.from_key(key).address
        self.account_id: int = -1

    def __repr__(self) -> str:
        return f"User({self.address}, id={self.account_id})"


def fixed_user(n: int) -> User:
    """A deterministic user (private key = n)."""
    return User(n.to_bytes(32, "big"))


def random_user() -> User:
    return User(bytes(EthAccount.create().key))


class Harness:
    """A ledger plus helpers that build correctly signed transitions; tracks net deposits."""

    def __init__(self, markets: Iterable[Market] = DEVNET_MARKETS, domain: Domain = DOMAIN):
        self.domain = domain
        self.ledger = Ledger.genesis(markets, domain)
        self.net_deposits = 0

    # -- transitions

    def deposit(self, user: User, amount: int, *, account_id: int | None = None) -> AppliedDeposit:
        if account_id is None:
            existing = self.ledger.account_id_of(user.address)
            account_id = self.ledger.exchange.next_account_id if existing is None else existing
        t = Deposit(self.ledger.exchange.deposit_cursor, account_id, user.address, amount, 1)
        result = self.ledger.apply(t)
        user.account_id = result.account_id
        self.net_deposits += amount
        return result

    def sign(self, t: Withdraw | MarginTransfer, key: bytes) -> bytes:
        return sign_digest(key, request_digest(self.domain, t))

    def withdraw_tx(
        self,
        user: User,
        amount: int,
        *,
        nonce: int | None = None,
        recipient: str | None = None,
        key: bytes | None = None,
    ) -> Withdraw:
        account = self.ledger.account(user.account_id)
        if nonce is None:
            nonce = account.nonce if account is not None else 0
        t = Withdraw(user.account_id, recipient or user.address, amount, nonce, b"")
        return Withdraw(t.account_id, t.recipient, t.amount, t.nonce, self.sign(t, key or user.key))

    def withdraw(self, user: User, amount: int, *, nonce: int | None = None) -> AppliedWithdraw:
        result = self.ledger.apply(self.withdraw_tx(user, amount, nonce=nonce))
        self.net_deposits -= amount
        return result

    def margin_tx(
        self,
        user: User,
        market_id: int,
        amount: int,
        *,
        nonce: int | None = None,
        key: bytes | None = None,
    ) -> MarginTransfer:
        account = self.ledger.account(user.account_id)
        if nonce is None:
            nonce = account.nonce if account is not None else 0
        t = MarginTransfer(user.account_id, market_id, amount, nonce, b"")
        return MarginTransfer(
            t.account_id, t.market_id, t.amount, t.nonce, self.sign(t, key or user.key)
        )

    def margin(
        self, user: User, market_id: int, amount: int, *, nonce: int | None = None
    ) -> AppliedMarginTransfer:
        return self.ledger.apply(self.margin_tx(user, market_id, amount, nonce=nonce))

    def fill(
        self,
        maker: User,
        taker: User,
        size: int,
        price: int,
        *,
        taker_is_buy: bool = True,
        market_id: int = 0,
    ) -> AppliedFill:
        return self.ledger.apply(
            Fill(market_id, maker.account_id, taker.account_id, taker_is_buy, size, price, 7)
        )

    def funded(self, collateral: int, margin: int = 0, market_id: int = 0) -> User:
        """A new user with ``collateral`` deposited and ``margin`` of it moved into a market."""
        user = random_user()
        self.deposit(user, collateral)
        if margin:
            self.margin(user, market_id, margin)
        return user

    # -- snapshots

    def snapshot(self) -> tuple[bytes, dict[int, bytes]]:
        return self.ledger.state_root, dict(self.ledger.leaves())

    def assert_unchanged(self, snapshot: tuple[bytes, dict[int, bytes]]) -> None:
        root, leaves = snapshot
        assert self.ledger.state_root == root
        assert dict(self.ledger.leaves()) == leaves
        for index, data in leaves.items():
            assert self.ledger.leaf_bytes(index) == data

    def reject(self, t: Transition, reason: str) -> TransitionRejected:
        """Applies ``t``, expects a rejection with ``reason`` and asserts nothing changed."""
        before = self.snapshot()
        with pytest.raises(TransitionRejected) as info:
            self.ledger.apply(t)
        assert info.value.reason == reason, info.value.message
        self.assert_unchanged(before)
        with pytest.raises(TransitionRejected):
            self.ledger.validate(t)
        return info.value


@pytest.fixture
def domain() -> Domain:
    return DOMAIN


@pytest.fixture
def h() -> Harness:
    return Harness()


@pytest.fixture
def harness_factory() -> Callable[..., Harness]:
    return Harness


@pytest.fixture
def user_factory() -> Callable[[int], User]:
    """Deterministic users: ``user_factory(n)`` has private key ``n``."""
    return fixed_user


@pytest.fixture
def new_user() -> Callable[[], User]:
    """Fresh random users (``eth_account.Account.create()``)."""
    return random_user
