"""The reference state transition function (docs/PROTOCOL.md, section 3 "Rules"). No I/O.

``Ledger`` holds the state (accounts, isolated positions, markets, the exchange leaf) and the
sparse Merkle tree that commits it. ``apply(transition)`` validates everything first, then
commits: a rejected transition raises ``TransitionRejected(reason, message)`` and leaves the
state, the leaves and the root exactly as they were. Every changed leaf is re-encoded and set in
the tree at once, so ``state_root`` only rehashes the dirty paths.

INVARIANTS (hold after every accepted transition; ``check_invariants`` verifies them):

1. Conservation: ``sum(account.collateral) + sum(position.quote) + exchange.fee_balance +
   exchange.insurance_fund == sum(deposits) - sum(withdrawals)``. Deposits and withdrawals move
   collateral across the boundary; margin transfers move it between an account and its position;
   a fill moves the notional ``n`` from the buyer's quote to the seller's and both fees into
   ``fee_balance`` (a maker rebate comes out of it), so fills conserve the total exactly.
2. No negative balance: ``collateral >= 0`` and ``fee_balance >= 0`` (the leaf types are
   unsigned).
3. Per market, the position sizes sum to zero, and ``open_interest`` equals the sum of the long
   sizes.
4. A flat position (``size == 0``) has ``basis == 0``; an empty position
   (``size == quote == 0``) has no leaf. Every position belongs to an existing account and market.
5. Account ids are ``0 .. next_account_id - 1``, one per owner address, never deleted.
6. ``state_root`` equals the root of a tree rebuilt from scratch from the encodings of all
   leaves.

REJECTION REASONS (``TransitionRejected.reason``):

- any transition: ``malformed`` (a field the batch record cannot carry: wrong type, out of its
  uint/int range, not an address), ``overflow`` (a result would leave its leaf range).
- Deposit: ``deposit_out_of_order``, ``bad_account_id``, ``accounts_full``, ``bad_amount`` (0).
- Withdraw / MarginTransfer: ``unknown_account``, ``bad_signature``, ``bad_nonce``, ``bad_amount``
  (0), ``insufficient_collateral``; Withdraw also ``bad_recipient`` (the zero address);
  MarginTransfer also ``unknown_market``, ``no_position`` (moving out of a missing position),
  ``insufficient_margin``.
- Fill: ``unknown_market``, ``bad_size``, ``off_tick``, ``self_trade``, ``unknown_account``,
  ``no_position``, ``fee_underflow``, ``insufficient_margin``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Final, TypeAlias, overload

from isoperp.errors import (
    ConfigError,
    InvariantViolation,
    IsoperpError,
    ProtocolError,
    TransitionRejected,
)
from isoperp.ledger import arith
from isoperp.ledger.model import Account, Exchange, Leaf, Market, Position, checksum_address
from isoperp.ledger.transitions import Deposit, Fill, MarginTransfer, Transition, Withdraw
from isoperp.protocol.constants import MAX_ACCOUNTS, STATE_TREE_DEPTH
from isoperp.protocol.leaves import (
    EXCHANGE_INDEX,
    account_index,
    decode_leaf,
    encode_account,
    encode_exchange,
    encode_leaf,
    encode_market,
    encode_position,
    index_of,
    market_index,
    position_index,
)
from isoperp.protocol.signing import Domain, recover_signer, request_digest
from isoperp.tree.merkle import EMPTY, SparseMerkleTree, hash_leaf

# ------------------------------------------------------------------------------------------------
# Results of accepted transitions


@dataclass(frozen=True, slots=True)
class AppliedDeposit:
    """A deposit was credited. ``created``: it opened account ``account_id``."""

    account_id: int
    amount: int
    created: bool
    collateral: int
    touched: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AppliedWithdraw:
    """Free collateral left the account; the batch builder appends
    ``(account_id, recipient, amount)`` to the checkpoint's withdrawals tree."""

    account_id: int
    recipient: str
    amount: int
    collateral: int
    touched: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AppliedMarginTransfer:
    """``amount`` moved into the position (negative: out of it).

    ``position`` is None if the position became empty and was deleted."""

    account_id: int
    market_id: int
    amount: int
    collateral: int
    position: Position | None
    touched: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class FillSide:
    """One side of a fill. ``fee`` is signed: negative is a rebate paid to the maker.
    ``realized_pnl`` is the PnL realized by the reducing part (0 if the fill only opened/added).
    ``position`` is None if the position became empty and was deleted."""

    account_id: int
    is_maker: bool
    is_buy: bool
    fee: int
    realized_pnl: int
    position: Position | None


@dataclass(frozen=True, slots=True)
class AppliedFill:
    """``size`` lots traded at ``price``; ``notional`` moved from the buyer's quote to the
    seller's. ``touched``: maker position, taker position, market, exchange leaf indices."""

    market_id: int
    size: int
    price: int
    notional: int
    maker: FillSide
    taker: FillSide
    open_interest: int
    fee_balance: int
    touched: tuple[int, ...]


Applied: TypeAlias = AppliedDeposit | AppliedWithdraw | AppliedMarginTransfer | AppliedFill


# ------------------------------------------------------------------------------------------------
# Field validation (record fields the batch format could not carry are "malformed")


def _reject(reason: str, message: str) -> TransitionRejected:
    return TransitionRejected(reason, message)


def _uint(name: str, value: object, bits: int) -> int:
    if type(value) is not int or not 0 <= value < (1 << bits):
        raise _reject("malformed", f"{name} must be a uint{bits}, got {value!r}")
    return value


def _sint(name: str, value: object, bits: int) -> int:
    bound = 1 << (bits - 1)
    if type(value) is not int or not -bound <= value < bound:
        raise _reject("malformed", f"{name} must be an int{bits}, got {value!r}")
    return value


def _address(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise _reject("malformed", f"{name} must be an address string, got {value!r}")
    try:
        return checksum_address(value)
    except ValueError as exc:
        raise _reject("malformed", f"{name}: {exc}") from exc


def _overflow(exc: ValueError) -> TransitionRejected:
    return _reject("overflow", f"a balance would leave its leaf range: {exc}")


def _only_reduced(old_size: int, new_size: int) -> bool:
    """The fill shrank |size| without flipping the side."""
    if new_size == 0:
        return old_size != 0
    return (new_size > 0) == (old_size > 0) and abs(new_size) < abs(old_size)


def _trade(
    pos: Position, delta: int, n: int, side_fee: int, price: int, market: Market
) -> tuple[Position, int]:
    """The position after trading ``delta`` lots (signed) for notional ``n``; the realized PnL."""
    old = pos.size
    quote = pos.quote - n - side_fee if delta > 0 else pos.quote + n - side_fee
    basis = pos.basis
    realized = 0
    if old == 0 or (old > 0) == (delta > 0):  # open or increase
        basis += n if delta > 0 else -n
    else:  # reduce, close, or flip (close all, then open the rest)
        held = abs(old)
        closed = min(abs(delta), held)
        removed = arith.trunc_div(basis * closed, held)
        realized = (1 if old > 0 else -1) * market.notional(closed, price) - removed
        basis -= removed
        rest = abs(delta) - closed
        if rest:
            basis = (1 if delta > 0 else -1) * market.notional(rest, price)
    try:
        new = Position(pos.account_id, pos.market_id, old + delta, quote, basis, pos.funding_index)
    except ValueError as exc:
        raise _overflow(exc) from exc
    return new, realized


def _check_fill_fields(t: Fill) -> None:
    _uint("market_id", t.market_id, 16)
    _uint("maker_id", t.maker_id, 32)
    _uint("taker_id", t.taker_id, 32)
    if type(t.taker_is_buy) is not bool:
        raise _reject("malformed", f"taker_is_buy must be a bool, got {t.taker_is_buy!r}")
    _uint("size", t.size, 64)
    _uint("price", t.price, 64)
    _uint("timestamp", t.timestamp, 64)


def _check_fill_margin(old: Position, new: Position, market: Market) -> None:
    """Initial margin at the mark price, unless the fill only reduced the position."""
    if _only_reduced(old.size, new.size):
        return
    mark = market.mark_price
    equity = new.equity(mark, market)
    required = new.initial_margin(mark, market)
    if equity < required:
        raise _reject(
            "insufficient_margin",
            f"account {new.account_id}: equity {equity} < initial margin {required} at mark {mark}",
        )


# A plan: the result, the leaves to write, and the position keys to delete.
_Plan: TypeAlias = tuple[Applied, tuple[Leaf, ...], tuple[tuple[int, int], ...]]

_NO_DELETES: Final[tuple[tuple[int, int], ...]] = ()


class Ledger:
    """The exchange state and its Merkle commitment; ``apply`` is the state transition function.

    Build one with ``Ledger.genesis(markets, domain)`` (or ``Ledger.from_leaves`` to resume from a
    snapshot of leaves). See the module docstring for the invariants.
    """

    __slots__ = (
        "_accounts",
        "_exchange",
        "_leaves",
        "_markets",
        "_owners",
        "_positions",
        "_tree",
        "domain",
    )

    def __init__(self, domain: Domain) -> None:
        """An empty ledger (no markets, no exchange leaf): use ``genesis`` or ``from_leaves``."""
        if not isinstance(domain, Domain):
            raise TypeError(f"domain must be a signing.Domain, got {type(domain).__name__}")
        self.domain = domain
        self._accounts: dict[int, Account] = {}
        self._owners: dict[str, int] = {}  # lower-case owner address -> account id
        self._positions: dict[tuple[int, int], Position] = {}
        self._markets: dict[int, Market] = {}
        self._exchange = Exchange(0, 0, 0, 0, 0)
        self._leaves: dict[int, bytes] = {}
        self._tree = SparseMerkleTree(STATE_TREE_DEPTH)

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def genesis(cls, markets: Iterable[Market], domain: Domain) -> Ledger:
        """The genesis state: the market leaves and an exchange leaf of zeros."""
        ledger = cls(domain)
        for market in markets:
            if not isinstance(market, Market):
                raise ConfigError(f"not a Market: {market!r}")
            if market.market_id in ledger._markets:
                raise ConfigError(f"duplicate market id {market.market_id}")
            if market.open_interest != 0:
                raise ConfigError(f"market {market.market_id} has open interest at genesis")
            ledger._put_market(market)
        ledger._put_exchange(Exchange(0, 0, 0, 0, 0))
        return ledger

    @classmethod
    def from_leaves(cls, leaves: Iterable[tuple[int, bytes]], domain: Domain) -> Ledger:
        """A ledger holding exactly the given ``(index, leaf bytes)`` (e.g. a snapshot); checks that
        every leaf sits at its own index and that the state is consistent (``check_invariants``
        without conservation). Raises ``ProtocolError``."""
        ledger = cls(domain)
        seen_exchange = False
        for index, data in leaves:
            leaf = decode_leaf(data)
            if index_of(leaf) != index:
                raise ProtocolError(
                    f"leaf at index {index} belongs at {index_of(leaf)}", code="bad_leaf"
                )
            if index in ledger._leaves:
                raise ProtocolError(f"duplicate leaf index {index}", code="bad_leaf")
            if isinstance(leaf, Account):
                if leaf.owner.lower() in ledger._owners:
                    raise ProtocolError(f"owner {leaf.owner} has two accounts", code="bad_leaf")
                ledger._put_account(leaf)
            elif isinstance(leaf, Position):
                if leaf.is_empty:
                    raise ProtocolError(f"empty position leaf at {index}", code="bad_leaf")
                ledger._put_position(leaf)
            elif isinstance(leaf, Market):
                ledger._put_market(leaf)
            else:
                seen_exchange = True
                ledger._put_exchange(leaf)
        if not seen_exchange:
            raise ProtocolError("no exchange leaf", code="bad_leaf")
        try:
            ledger.check_invariants()
        except IsoperpError as exc:
            raise ProtocolError(f"inconsistent leaves: {exc.message}", code="bad_leaf") from exc
        return ledger

    def copy(self) -> Ledger:
        """An independent deep copy (for dry runs); values are immutable, so containers suffice."""
        other = Ledger.__new__(Ledger)
        other.domain = self.domain
        other._accounts = dict(self._accounts)
        other._owners = dict(self._owners)
        other._positions = dict(self._positions)
        other._markets = dict(self._markets)
        other._exchange = self._exchange
        other._leaves = dict(self._leaves)
        other._tree = self._tree.copy()
        return other

    # -- queries -----------------------------------------------------------------------------------

    @property
    def state_root(self) -> bytes:
        """The root of the state tree (recomputes only the paths changed since the last call)."""
        return self._tree.root

    @property
    def exchange(self) -> Exchange:
        return self._exchange

    @property
    def markets(self) -> tuple[Market, ...]:
        """All markets, by id."""
        return tuple(self._markets[i] for i in sorted(self._markets))

    def market(self, market_id: int) -> Market | None:
        return self._markets.get(market_id)

    def account(self, account_id: int) -> Account | None:
        return self._accounts.get(account_id)

    def account_id_of(self, owner: str) -> int | None:
        """The account id of ``owner`` (any letter case), or None."""
        return self._owners.get(owner.lower()) if isinstance(owner, str) else None

    def position(self, account_id: int, market_id: int) -> Position | None:
        return self._positions.get((account_id, market_id))

    def accounts(self) -> Iterator[Account]:
        """All accounts, by id."""
        return (self._accounts[i] for i in sorted(self._accounts))

    def positions(
        self, *, account_id: int | None = None, market_id: int | None = None
    ) -> Iterator[Position]:
        """Open positions (leaves), by (account, market), optionally filtered."""
        for key in sorted(self._positions):
            if (account_id is None or key[0] == account_id) and (
                market_id is None or key[1] == market_id
            ):
                yield self._positions[key]

    def leaves(self) -> Iterator[tuple[int, bytes]]:
        """Every non-empty leaf as ``(index, leaf bytes)``, by index."""
        return ((i, self._leaves[i]) for i in sorted(self._leaves))

    def leaf_bytes(self, index: int) -> bytes | None:
        """The encoded leaf at ``index``, or None for an empty slot."""
        return self._leaves.get(index)

    def proof(self, index: int) -> list[bytes]:
        """The ``STATE_TREE_DEPTH`` sibling hashes of ``index``, bottom-up."""
        return self._tree.proof(index)

    def total_liabilities(self) -> int:
        """``sum(collateral) + sum(position quote) + insurance_fund + fee_balance``."""
        return (
            sum(a.collateral for a in self._accounts.values())
            + sum(p.quote for p in self._positions.values())
            + self._exchange.insurance_fund
            + self._exchange.fee_balance
        )

    def check_invariants(self, net_deposits: int | None = None) -> None:
        """Verifies invariants 2-5 (and 1 when ``net_deposits`` = deposits - withdrawals is given).

        O(state). Raises ``InvariantViolation`` on the first violation.
        """

        def fail(message: str) -> None:
            raise InvariantViolation(message)

        ex = self._exchange
        if sorted(self._accounts) != list(range(ex.next_account_id)):
            fail(f"account ids are not 0..{ex.next_account_id - 1}")
        if len(self._owners) != len(self._accounts) or any(
            self._owners.get(a.owner.lower()) != a.account_id for a in self._accounts.values()
        ):
            fail("owner index does not match the accounts")
        sizes = dict.fromkeys(self._markets, 0)
        longs = dict.fromkeys(self._markets, 0)
        for (account_id, market_id), pos in self._positions.items():
            if account_id not in self._accounts or market_id not in self._markets:
                fail(f"position ({account_id}, {market_id}) has no account or market")
            if pos.is_empty:
                fail(f"empty position ({account_id}, {market_id}) has a leaf")
            if pos.size == 0 and pos.basis != 0:
                fail(f"flat position ({account_id}, {market_id}) has basis {pos.basis}")
            sizes[market_id] += pos.size
            longs[market_id] += max(pos.size, 0)
        for market_id, market in self._markets.items():
            if sizes[market_id] != 0:
                fail(f"market {market_id}: sizes sum to {sizes[market_id]}")
            if longs[market_id] != market.open_interest:
                oi = market.open_interest
                fail(f"market {market_id}: open interest {oi} != {longs[market_id]}")
        if net_deposits is not None and self.total_liabilities() != net_deposits:
            fail(f"liabilities {self.total_liabilities()} != net deposits {net_deposits}")

    # -- the transition function -----------------------------------------------------------------

    @overload
    def apply(self, t: Deposit) -> AppliedDeposit: ...
    @overload
    def apply(self, t: Withdraw) -> AppliedWithdraw: ...
    @overload
    def apply(self, t: MarginTransfer) -> AppliedMarginTransfer: ...
    @overload
    def apply(self, t: Fill) -> AppliedFill: ...

    def apply(self, t: Transition) -> Applied:
        """Applies ``t`` or raises ``TransitionRejected`` (state unchanged)."""
        result, writes, deletes = self._plan(t)
        for key in deletes:
            self._delete_position(key)
        for leaf in writes:
            self._put(leaf)
        return result

    @overload
    def validate(self, t: Deposit) -> AppliedDeposit: ...
    @overload
    def validate(self, t: Withdraw) -> AppliedWithdraw: ...
    @overload
    def validate(self, t: MarginTransfer) -> AppliedMarginTransfer: ...
    @overload
    def validate(self, t: Fill) -> AppliedFill: ...

    def validate(self, t: Transition) -> Applied:
        """What ``apply(t)`` would return, changing nothing (raises the same rejections)."""
        return self._plan(t)[0]

    def _plan(self, t: Transition) -> _Plan:
        planner = _PLANNERS.get(type(t))
        if planner is None:
            raise TypeError(f"not a transition: {type(t).__name__}")
        return planner(self, t)

    # -- planners: validate and compute, never mutate ------------------------------------------

    def _plan_deposit(self, t: Deposit) -> _Plan:
        deposit_index = _uint("deposit_index", t.deposit_index, 64)
        account_id = _uint("account_id", t.account_id, 32)
        owner = _address("owner", t.owner)
        amount = _uint("amount", t.amount, 128)
        _uint("timestamp", t.timestamp, 64)
        ex = self._exchange
        if deposit_index != ex.deposit_cursor:
            raise _reject(
                "deposit_out_of_order",
                f"deposit {deposit_index} is not the next in the queue ({ex.deposit_cursor})",
            )
        existing = self._owners.get(owner.lower())
        created = existing is None
        if existing is not None and account_id != existing:
            raise _reject("bad_account_id", f"{owner} owns account {existing}, not {account_id}")
        if existing is None:
            if account_id != ex.next_account_id:
                raise _reject(
                    "bad_account_id",
                    f"a new owner gets account {ex.next_account_id}, not {account_id}",
                )
            if account_id >= MAX_ACCOUNTS:
                raise _reject("accounts_full", f"all {MAX_ACCOUNTS} account ids are taken")
        if amount == 0:
            raise _reject("bad_amount", "deposit amount must be > 0")
        old = self._accounts.get(account_id)
        try:
            if old is None:
                account = Account(account_id, owner, amount, 0)
            else:
                account = Account(account_id, old.owner, old.collateral + amount, old.nonce)
            exchange = Exchange(
                ex.insurance_fund,
                ex.fee_balance,
                ex.next_account_id + created,
                ex.deposit_cursor + 1,
                ex.forced_cursor,
            )
        except ValueError as exc:
            raise _overflow(exc) from exc
        result = AppliedDeposit(
            account_id,
            amount,
            created,
            account.collateral,
            (EXCHANGE_INDEX, account_index(account_id)),
        )
        return result, (exchange, account), _NO_DELETES

    def _signed_account(self, t: Withdraw | MarginTransfer) -> Account:
        """The account of a signed request after the signature and nonce checks."""
        account = self._accounts.get(t.account_id)
        if account is None:
            raise _reject("unknown_account", f"no account {t.account_id}")
        if not isinstance(t.signature, bytes):
            raise _reject("malformed", "signature must be bytes")
        try:
            signer = recover_signer(request_digest(self.domain, t), t.signature)
        except ProtocolError as exc:
            raise _reject("bad_signature", exc.message) from exc
        if signer != account.owner:
            raise _reject("bad_signature", f"signed by {signer}, not the owner {account.owner}")
        if t.nonce != account.nonce:
            raise _reject("bad_nonce", f"nonce {t.nonce}, expected {account.nonce}")
        return account

    def _plan_withdraw(self, t: Withdraw) -> _Plan:
        _uint("account_id", t.account_id, 32)
        recipient = _address("recipient", t.recipient)
        amount = _uint("amount", t.amount, 128)
        _uint("nonce", t.nonce, 64)
        if int(recipient, 16) == 0:
            raise _reject("bad_recipient", "the zero address can never be paid on L1")
        account = self._signed_account(t)
        if amount == 0:
            raise _reject("bad_amount", "withdrawal amount must be > 0")
        if amount > account.collateral:
            raise _reject(
                "insufficient_collateral",
                f"withdrawing {amount} with {account.collateral} free collateral",
            )
        try:
            new = Account(
                account.account_id, account.owner, account.collateral - amount, t.nonce + 1
            )
        except ValueError as exc:
            raise _overflow(exc) from exc
        result = AppliedWithdraw(
            account.account_id, recipient, amount, new.collateral, (account_index(t.account_id),)
        )
        return result, (new,), _NO_DELETES

    def _plan_margin_transfer(self, t: MarginTransfer) -> _Plan:
        _uint("account_id", t.account_id, 32)
        market_id = _uint("market_id", t.market_id, 16)
        amount = _sint("amount", t.amount, 128)
        _uint("nonce", t.nonce, 64)
        account = self._signed_account(t)
        market = self._markets.get(market_id)
        if market is None:
            raise _reject("unknown_market", f"no market {market_id}")
        if amount == 0:
            raise _reject("bad_amount", "margin transfer amount must be != 0")
        key = (account.account_id, market_id)
        pos = self._positions.get(key)
        if amount > 0:
            if amount > account.collateral:
                raise _reject(
                    "insufficient_collateral",
                    f"moving {amount} in with {account.collateral} free collateral",
                )
            if pos is None:
                pos = Position(account.account_id, market_id, 0, 0, 0, market.funding_index)
        else:
            if pos is None:
                raise _reject(
                    "no_position", f"account {key[0]} has no position in market {market_id}"
                )
            quote = pos.quote + amount
            if pos.size == 0:
                if quote < 0:
                    raise _reject(
                        "insufficient_margin", f"moving {-amount} out leaves quote {quote} < 0"
                    )
            else:
                mark = market.mark_price
                equity = quote + market.notional(pos.size, mark)
                required = arith.margin_requirement(market.notional(pos.size, mark), market.imf_ppm)
                if equity < required:
                    raise _reject(
                        "insufficient_margin",
                        f"equity {equity} after the move < initial margin {required}",
                    )
        try:
            new_pos = dataclasses.replace(pos, quote=pos.quote + amount)
            new_account = Account(
                account.account_id, account.owner, account.collateral - amount, t.nonce + 1
            )
        except ValueError as exc:
            raise _overflow(exc) from exc
        deleted = new_pos.is_empty
        result = AppliedMarginTransfer(
            account.account_id,
            market_id,
            amount,
            new_account.collateral,
            None if deleted else new_pos,
            (account_index(key[0]), position_index(*key), market_index(market_id)),
        )
        if deleted:
            return result, (new_account,), (key,)
        return result, (new_account, new_pos), _NO_DELETES

    def _fill_position(self, account_id: int, market_id: int) -> Position:
        if account_id not in self._accounts:
            raise _reject("unknown_account", f"no account {account_id}")
        pos = self._positions.get((account_id, market_id))
        if pos is None:
            raise _reject(
                "no_position",
                f"account {account_id} has no position in market {market_id} (move margin in)",
            )
        return pos

    def _plan_fill(self, t: Fill) -> _Plan:
        _check_fill_fields(t)
        market_id, maker_id, taker_id = t.market_id, t.maker_id, t.taker_id
        size, price = t.size, t.price
        market = self._markets.get(market_id)
        if market is None:
            raise _reject("unknown_market", f"no market {market_id}")
        if size == 0 or size < market.min_size or size % market.size_step:
            raise _reject(
                "bad_size",
                f"size {size}: need >= {market.min_size} and a multiple of {market.size_step}",
            )
        if price == 0 or price % market.price_tick:
            raise _reject(
                "off_tick", f"price {price} is not a positive multiple of {market.price_tick}"
            )
        if maker_id == taker_id:
            raise _reject("self_trade", f"account {maker_id} is both maker and taker")
        maker_pos = self._fill_position(maker_id, market_id)
        taker_pos = self._fill_position(taker_id, market_id)

        n = market.notional(size, price)
        maker_fee = arith.fee(n, market.maker_fee_ppm)
        taker_fee = arith.fee(n, market.taker_fee_ppm)
        ex = self._exchange
        fee_balance = ex.fee_balance + maker_fee + taker_fee
        if fee_balance < 0:
            raise _reject(
                "fee_underflow", f"the maker rebate would take the fee balance to {fee_balance}"
            )
        taker_delta = size if t.taker_is_buy else -size
        new_maker, maker_pnl = _trade(maker_pos, -taker_delta, n, maker_fee, price, market)
        new_taker, taker_pnl = _trade(taker_pos, taker_delta, n, taker_fee, price, market)

        _check_fill_margin(maker_pos, new_maker, market)
        _check_fill_margin(taker_pos, new_taker, market)

        open_interest = (
            market.open_interest
            + max(new_maker.size, 0)
            - max(maker_pos.size, 0)
            + max(new_taker.size, 0)
            - max(taker_pos.size, 0)
        )
        writes: list[Leaf] = []
        deletes: list[tuple[int, int]] = []
        try:
            if open_interest != market.open_interest:
                writes.append(dataclasses.replace(market, open_interest=open_interest))
            if fee_balance != ex.fee_balance:
                writes.append(dataclasses.replace(ex, fee_balance=fee_balance))
        except ValueError as exc:
            raise _overflow(exc) from exc
        for new in (new_maker, new_taker):
            if new.is_empty:
                deletes.append((new.account_id, market_id))
            else:
                writes.append(new)
        result = AppliedFill(
            market_id,
            size,
            price,
            n,
            FillSide(
                maker_id,
                True,
                not t.taker_is_buy,
                maker_fee,
                maker_pnl,
                None if new_maker.is_empty else new_maker,
            ),
            FillSide(
                taker_id,
                False,
                t.taker_is_buy,
                taker_fee,
                taker_pnl,
                None if new_taker.is_empty else new_taker,
            ),
            open_interest,
            fee_balance,
            (
                position_index(maker_id, market_id),
                position_index(taker_id, market_id),
                market_index(market_id),
                EXCHANGE_INDEX,
            ),
        )
        return result, tuple(writes), tuple(deletes)

    # -- commit: the only code that mutates the state ----------------------------------------------

    def _put(self, leaf: Leaf) -> None:
        if isinstance(leaf, Position):
            self._put_position(leaf)
        elif isinstance(leaf, Account):
            self._put_account(leaf)
        elif isinstance(leaf, Exchange):
            self._put_exchange(leaf)
        elif isinstance(leaf, Market):
            self._put_market(leaf)
        else:  # pragma: no cover - planners only produce leaves
            raise TypeError(f"not a leaf: {type(leaf).__name__}")

    def _write(self, index: int, data: bytes) -> None:
        self._leaves[index] = data
        self._tree.set(index, hash_leaf(data))

    def _put_account(self, account: Account) -> None:
        self._accounts[account.account_id] = account
        self._owners[account.owner.lower()] = account.account_id
        self._write(account_index(account.account_id), encode_account(account))

    def _put_position(self, pos: Position) -> None:
        self._positions[(pos.account_id, pos.market_id)] = pos
        self._write(position_index(pos.account_id, pos.market_id), encode_position(pos))

    def _put_market(self, market: Market) -> None:
        self._markets[market.market_id] = market
        self._write(market_index(market.market_id), encode_market(market))

    def _put_exchange(self, exchange: Exchange) -> None:
        self._exchange = exchange
        self._write(EXCHANGE_INDEX, encode_exchange(exchange))

    def _delete_position(self, key: tuple[int, int]) -> None:
        del self._positions[key]
        index = position_index(*key)
        del self._leaves[index]
        self._tree.set(index, EMPTY)


_PLANNERS: Final[dict[type, Callable[[Ledger, Transition], _Plan]]] = {
    Deposit: Ledger._plan_deposit,  # type: ignore[dict-item]
    Withdraw: Ledger._plan_withdraw,  # type: ignore[dict-item]
    MarginTransfer: Ledger._plan_margin_transfer,  # type: ignore[dict-item]
    Fill: Ledger._plan_fill,  # type: ignore[dict-item]
}


def rebuild_root(leaves: Iterable[Leaf]) -> bytes:
    """The root of a tree built from scratch from model objects (checks the incremental one)."""
    tree = SparseMerkleTree(STATE_TREE_DEPTH)
    for leaf in leaves:
        tree.set(index_of(leaf), hash_leaf(encode_leaf(leaf)))
    return tree.root
