"""Fixtures for the operator unit tests: a devnet ledger and a harness that signs requests,
orders and oracle prices."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest
from eth_account import Account as EthAccount

from isoperp.errors import TransitionRejected
from isoperp.ledger.ledger import (
    AppliedDeposit,
    AppliedFill,
    AppliedMarginTransfer,
    AppliedOrder,
    AppliedPrice,
    AppliedWithdraw,
    Ledger,
)
from isoperp.ledger.markets import DEVNET_MARKETS, DEVNET_OPERATOR
from isoperp.ledger.model import Market
from isoperp.ledger.transitions import (
    CancelOrder,
    Deposit,
    Fill,
    MarginTransfer,
    PlaceOrder,
    PriceUpdate,
    Transition,
    Withdraw,
)
from isoperp.protocol.constants import INSURANCE_ACCOUNT, ZERO_ADDRESS
from isoperp.protocol.header import WithdrawalLeaf
from isoperp.protocol.signing import (
    NO_SIGNATURE,
    Domain,
    SignedRequest,
    request_digest,
    sign_digest,
    sign_request,
)

DOMAIN = Domain(chain_id=31337, verifying_contract="0x5FbDB2315678afecb367f032d93F642f64180aa3")
ORACLE_KEY = (0x0AC1E).to_bytes(32, "big")
ORACLE = EthAccount.from_key(ORACLE_KEY).address


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


INSURANCE = User.__new__(User)
"""The insurance account as a harness user: no key (its orders carry NO_SIGNATURE)."""
INSURANCE.key, INSURANCE.address, INSURANCE.account_id = b"", ZERO_ADDRESS, INSURANCE_ACCOUNT


class Harness:
    """A ledger plus helpers that build correctly signed transitions; tracks net deposits and
    each account's next order nonce."""

    def __init__(self, markets: Iterable[Market] = DEVNET_MARKETS, domain: Domain = DOMAIN):
        self.domain = domain
        self.ledger = Ledger.genesis(markets, domain, ORACLE, fee_recipient=DEVNET_OPERATOR)
        self.net_deposits = 0
        self.next_nonce: dict[int, int] = {}

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

    def sign(self, t: SignedRequest, key: bytes) -> bytes:
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

    def order_tx(
        self,
        user: User,
        is_buy: bool,
        price: int,
        size: int,
        *,
        market_id: int = 0,
        tif: int = 0,
        flags: int = 0,
        nonce: int | None = None,
        expiry: int = 0,
        key: bytes | None = None,
    ) -> PlaceOrder:
        """A signed order; ``nonce`` defaults to the account's next one (then it is used up).
        The insurance account's orders carry ``NO_SIGNATURE``."""
        if nonce is None:
            nonce = self.next_nonce.get(user.account_id, 0)
            self.next_nonce[user.account_id] = nonce + 1
        t = PlaceOrder(
            user.account_id, market_id, is_buy, price, size, tif, flags, nonce, expiry, NO_SIGNATURE
        )
        if user.account_id == INSURANCE_ACCOUNT and key is None:
            return t
        return sign_request(key or user.key, self.domain, t)

    def place(self, user: User, is_buy: bool, price: int, size: int, **kw: Any) -> AppliedOrder:
        return self.ledger.apply(self.order_tx(user, is_buy, price, size, **kw))

    def cancel_tx(self, user: User, nonce: int, *, key: bytes | None = None) -> CancelOrder:
        t = CancelOrder(user.account_id, nonce, NO_SIGNATURE)
        if user.account_id == INSURANCE_ACCOUNT and key is None:
            return t
        return sign_request(key or user.key, self.domain, t)

    def price_tx(
        self, price: int, timestamp: int, *, market_id: int = 0, key: bytes = ORACLE_KEY
    ) -> PriceUpdate:
        return sign_request(key, self.domain, PriceUpdate(market_id, price, timestamp, b""))

    def set_price(self, price: int, timestamp: int, *, market_id: int = 0) -> AppliedPrice:
        return self.ledger.apply(self.price_tx(price, timestamp, market_id=market_id))

    def fill_tx(
        self,
        maker: User,
        taker: User,
        size: int,
        price: int,
        *,
        taker_is_buy: bool = True,
        market_id: int = 0,
        taker_price: int | None = None,
        taker_tif: int = 0,
        maker_flags: int = 0,
        taker_flags: int = 0,
        timestamp: int = 7,
    ) -> Fill:
        """Registers a fresh maker order (GTC, ``size`` at ``price``) and a fresh taker order
        (limit ``taker_price``, default ``price``) and returns the Fill between them."""
        maker_order = self.place(
            maker, not taker_is_buy, price, size, market_id=market_id, flags=maker_flags
        ).order
        taker_order = self.place(
            taker,
            taker_is_buy,
            price if taker_price is None else taker_price,
            size,
            market_id=market_id,
            tif=taker_tif,
            flags=taker_flags,
        ).order
        return Fill(
            market_id,
            maker.account_id,
            maker_order.slot,
            taker.account_id,
            taker_order.slot,
            size,
            price,
            timestamp,
        )

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
            self.fill_tx(maker, taker, size, price, taker_is_buy=taker_is_buy, market_id=market_id)
        )

    def funded(self, collateral: int, margin: int = 0, market_id: int = 0) -> User:
        """A new user with ``collateral`` deposited and ``margin`` of it moved into a market."""
        user = random_user()
        self.deposit(user, collateral)
        if margin:
            self.margin(user, market_id, margin)
        return user

    # -- snapshots

    def snapshot(self) -> tuple[bytes, dict[int, bytes], list[WithdrawalLeaf]]:
        return self.ledger.state_root, dict(self.ledger.leaves()), self.ledger.withdrawals()

    def assert_unchanged(
        self, snapshot: tuple[bytes, dict[int, bytes], list[WithdrawalLeaf]]
    ) -> None:
        root, leaves, withdrawals = snapshot
        assert self.ledger.state_root == root
        assert dict(self.ledger.leaves()) == leaves
        assert self.ledger.withdrawals() == withdrawals
        assert self.ledger.withdrawals_tree().root == self.ledger.exchange.withdrawals_root
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
def oracle() -> str:
    """The harness ledgers' oracle address (key ``ORACLE_KEY``)."""
    return ORACLE


@pytest.fixture
def oracle_key() -> bytes:
    return ORACLE_KEY


@pytest.fixture
def insurance() -> User:
    """The insurance account as a harness user (orders without signature)."""
    return INSURANCE


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
