"""The reference state transition function (docs/PROTOCOL.md, section 3 "Rules"). No I/O.

``Ledger`` holds the state (accounts, isolated positions, order slots, markets, the exchange leaf)
and the sparse Merkle tree that commits it. ``apply(transition)`` validates everything first,
then commits: a rejected transition raises ``TransitionRejected(reason, message)`` and leaves the
state, the leaves and the root exactly as they were. Every changed leaf is re-encoded and set in
the tree at once, so ``state_root`` only rehashes the dirty paths.

INVARIANTS (hold after every accepted transition; ``check_invariants`` verifies them):

1. Conservation: ``sum(account.collateral) + sum(position.quote) + sum(pending funding) +
   exchange.fee_balance + exchange.insurance_fund + funding_dust == deposits -
   exchange.withdrawal_total`` with ``funding_dust >= 0``, where ``deposits`` sums every deposit
   the ledger took off the queue (credited or rejected) and ``withdrawal_total`` every leaf of the
   withdrawals tree (withdrawals, forced payouts, deposit refunds, the fee recipient's part of
   collected fees). Those two move collateral across the boundary; every other transition moves
   value between leaves. Funding is booked lazily (on touch) and floors
   every payment, so the dust it leaves behind is never negative and grows by less than 1
   micro-USDC per settlement (PROTOCOL.md 3.4).
2. No negative balance: ``collateral >= 0`` and ``fee_balance >= 0`` (the leaf types are
   unsigned). Only ``insurance_fund`` is signed: it absorbs the losses of the positions it took.
3. Per market, the position sizes sum to zero, and ``open_interest`` equals the sum of the long
   sizes.
4. A flat position (``size == 0``) has ``basis == 0``; an empty position
   (``size == quote == 0``) has no leaf. Every position and order belongs to an existing account;
   every position and live order to an existing market. ``filled <= size`` for every order.
5. Account ids are ``0 .. next_account_id - 1`` plus ``INSURANCE_ACCOUNT`` (owner = the zero
   address, collateral 0, from genesis), one per owner address, never deleted.
6. ``state_root`` equals the root of a tree rebuilt from scratch from the encodings of all
   leaves.
7. The exchange leaf commits to the global append-only withdrawals tree (depth 32): its
   ``withdrawals_root`` is the root of the leaves appended so far, ``withdrawal_count`` their
   number and ``withdrawal_total`` the sum of their amounts. A paying record appends its leaf
   ``(accountId, recipient, amount)`` at index ``withdrawal_count`` in the same transition.

REJECTION REASONS (``TransitionRejected.reason``):

- any transition: ``malformed`` (a field the batch record cannot carry, checked against the record
  table ``isoperp.protocol.records``: wrong type, out of its uint/int range, not an address, a
  signature that is not 65 bytes, an order slot >= 64), ``overflow`` (a result would leave its
  leaf range).
- Deposit: ``deposit_out_of_order``, ``bad_account_id``, ``accounts_full``, ``bad_amount`` (0),
  ``insurance_account`` (a deposit for the zero address, which owns the insurance account),
  ``collateral_overflow`` (the account cannot hold that much more). A deposit rejected for
  ``accounts_full`` or ``collateral_overflow`` is served as DepositRejected instead.
- DepositRejected (refunds a deposit that cannot be credited, through a withdrawal leaf
  ``(0xFFFFFFFF, owner, amount)``): ``deposit_out_of_order``, ``bad_amount`` (0),
  ``insurance_account``, ``bad_account_id`` (not the owner's account, or not ``next_account_id``
  for a new owner), ``deposit_creditable`` (the deposit can be credited: a new owner while ids are
  left, or an account that can hold the amount), ``overflow``.
- FeeCollect: ``bad_amount`` (0), ``insufficient_fees`` (more than ``fee_balance``),
  ``overflow``.
- Withdraw / MarginTransfer: ``unknown_account``, ``bad_signature``, ``bad_nonce``, ``bad_amount``
  (0), ``insufficient_collateral``; Withdraw also ``bad_recipient`` (the zero address);
  MarginTransfer also ``unknown_market``, ``no_position`` (moving out of a missing position),
  ``insufficient_margin``.
- Order: ``unknown_account``, ``bad_signature``, ``unknown_market``, ``bad_order`` (time in
  force > 2, unknown flag bits, post-only with IOC/FOK), ``off_tick``, ``bad_size``,
  ``insurance_account`` (an insurance order that is not reduce-only), ``order_exists`` (this
  nonce is already in its slot), ``stale_nonce`` (the slot holds a larger nonce).
- Cancel: ``unknown_account``, ``bad_signature``, ``order_closed`` (already closed or a
  tombstone), ``stale_nonce``. OrderDone: ``no_order``, ``order_closed``, ``not_ioc``.
- Price: ``unknown_market``, ``bad_signature`` (not the oracle), ``bad_price`` (0),
  ``price_not_newer`` (timestamp <= markTime).
- Funding: ``unknown_market``, ``funding_not_newer`` (timestamp <= fundingTime),
  ``funding_rate_cap`` (|rate| > 600% x (IMF - MMF)), ``stale_price`` (the mark is older than
  ``MAX_PRICE_AGE`` or newer than the record).
- Fill: ``unknown_market``, ``bad_size`` (0 or off the size step), ``off_tick``, ``self_trade``,
  ``no_order``, ``order_closed``, ``market_mismatch``, ``same_side``, ``maker_not_resting`` (the
  maker is IOC/FOK), ``post_only_taker``, ``maker_price`` (price != the maker's),
  ``taker_price`` (beyond the taker's limit), ``expired``, ``overfill``, ``unknown_account``,
  ``no_position``, ``fee_underflow``, ``reduce_only``, ``insufficient_margin``.
- Liquidate: Fill's maker checks, plus ``insurance_account``, ``stale_price``,
  ``not_liquidatable``, ``liquidation_size`` (more than the position), ``beyond_bankruptcy``
  (a price worse than the position's bankruptcy price on the tick grid).
- Backstop: ``unknown_market``, ``insurance_account``, ``no_position``, ``stale_price``,
  ``not_liquidatable``, ``insurance_insolvent``.
- Deleverage: ``unknown_market``, ``bad_size``, ``insurance_account``, ``self_trade``,
  ``no_position``, ``stale_price``, ``not_bankrupt``, ``liquidation_size``,
  ``insurance_solvent`` (the fund could take the position: backstop it instead),
  ``counterparty_size`` (no opposite position of at least ``size``), ``insufficient_margin``
  (the counterparty would close flat with a negative quote).
- ForcedWithdraw / ForcedExit (the L1 forced-request queue): only ``malformed``,
  ``forced_out_of_order`` (not ``exchange.forced_cursor``) and ``overflow``. A request that cannot
  be executed is *served as a no-op* instead (the cursor advances, the result's ``noop`` names
  why): the contract cannot check owners, and a request the operator could not serve would
  freeze the exchange at its deadline.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias, overload

from isoperp.errors import (
    ConfigError,
    InvariantViolation,
    IsoperpError,
    ProtocolError,
    TransitionRejected,
)
from isoperp.hashing import keccak256
from isoperp.ledger import arith, risk
from isoperp.ledger.model import (
    WITHDRAWALS_CAPACITY,
    Account,
    Exchange,
    Leaf,
    Market,
    Order,
    Position,
    checksum_address,
)
from isoperp.ledger.transitions import (
    Backstop,
    CancelOrder,
    Deleverage,
    Deposit,
    DepositRejected,
    FeeCollect,
    Fill,
    ForcedExit,
    ForcedWithdraw,
    Funding,
    Liquidate,
    MarginTransfer,
    OrderDone,
    PlaceOrder,
    PriceUpdate,
    SignedRequest,
    Transition,
    Withdraw,
)
from isoperp.protocol.constants import (
    ACCOUNT_SHIFT,
    FLAG_POST_ONLY,
    FLAG_REDUCE_ONLY,
    FUNDING_RATE_CAP_MULTIPLE,
    INSURANCE_ACCOUNT,
    INSURANCE_FEE_SHARE_PPM,
    LEAF_SALT,
    LIQUIDATION_FEE_PPM,
    MAX_ACCOUNTS,
    MAX_MARKETS,
    MAX_PRICE_AGE,
    ORDER_FLAGS_MASK,
    ORDER_SLOTS,
    PPM,
    STATE_TREE_DEPTH,
    SYSTEM_WITHDRAWAL_ACCOUNT,
    TIF_FOK,
    TIF_GTC,
    TIF_IOC,
    UINT128_MAX,
    WITHDRAWAL_TREE_DEPTH,
    ZERO_ADDRESS,
)
from isoperp.protocol.header import WithdrawalLeaf
from isoperp.protocol.leaves import (
    EXCHANGE_INDEX,
    account_index,
    decode_leaf,
    encode_account,
    encode_exchange,
    encode_leaf,
    encode_market,
    encode_order,
    encode_position,
    index_of,
    market_index,
    order_index,
    position_index,
)
from isoperp.protocol.records import BY_CLASS
from isoperp.protocol.signing import NO_SIGNATURE, Domain, recover_signer, request_digest
from isoperp.tree.merkle import EMPTY, AppendOnlyTree, SparseMerkleTree, hash_leaf

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
    """Free collateral left the account: ``(account_id, recipient, amount)`` was appended to the
    global withdrawals tree at ``withdrawal_index``."""

    account_id: int
    recipient: str
    amount: int
    collateral: int
    touched: tuple[int, ...]
    withdrawal_index: int


@dataclass(frozen=True, slots=True)
class AppliedDepositRejected:
    """Deposit ``deposit_index`` could not be credited (``reason``: ``accounts_full`` or
    ``collateral_overflow``); the cursor advanced and ``(0xFFFFFFFF, owner, amount)`` was appended
    to the withdrawals tree at ``withdrawal_index`` (the refund)."""

    deposit_index: int
    account_id: int
    owner: str
    amount: int
    reason: str
    withdrawal_index: int
    touched: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AppliedFeeCollect:
    """``amount`` left the fee balance: ``to_insurance`` (20%, floored) went to the insurance fund
    and ``paid`` to ``recipient`` (the fee recipient) through the withdrawals tree, at
    ``withdrawal_index`` (None when ``paid`` is 0)."""

    amount: int
    to_insurance: int
    paid: int
    recipient: str
    fee_balance: int
    insurance_fund: int
    withdrawal_index: int | None
    touched: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AppliedMarginTransfer:
    """``amount`` moved into the position (negative: out of it), after ``funding`` was settled.

    ``position`` is None if the position became empty and was deleted."""

    account_id: int
    market_id: int
    amount: int
    collateral: int
    position: Position | None
    touched: tuple[int, ...]
    funding: int = 0


@dataclass(frozen=True, slots=True)
class AppliedOrder:
    """``order`` was registered; ``replaced`` is the older order (or tombstone) that held its slot
    (it can never fill again)."""

    order: Order
    replaced: Order | None
    touched: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AppliedOrderClosed:
    """A cancel or an IOC/FOK done closed ``order`` (``size == filled`` now); ``tombstone``: the
    cancelled nonce was never registered and is now burnt."""

    order: Order
    tombstone: bool
    touched: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AppliedPrice:
    """The market's mark price and its time were set."""

    market_id: int
    price: int
    timestamp: int
    touched: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AppliedFunding:
    """The market's funding index moved by ``index_delta`` to ``funding_index``."""

    market_id: int
    rate_ppm: int
    dt: int
    index_delta: int
    funding_index: int
    touched: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class FillSide:
    """One side of a trade (fill, liquidation, deleverage).

    ``fee`` is signed: negative is a rebate paid to the maker. ``realized_pnl`` is the PnL
    realized by the reducing part (0 if it only opened/added). ``funding`` was settled into the
    quote before the trade. ``released`` is the quote that moved back to free collateral (to the
    insurance fund for the insurance account) because the position ended flat; ``position`` is
    then None (deleted). ``order`` is the order after the fill (None without an order)."""

    account_id: int
    is_maker: bool
    is_buy: bool
    fee: int
    realized_pnl: int
    funding: int
    released: int
    position: Position | None
    order: Order | None


@dataclass(frozen=True, slots=True)
class AppliedFill:
    """``size`` lots traded at ``price``; ``notional`` moved from the buyer's quote to the
    seller's. ``touched``: the leaf indices read or written."""

    market_id: int
    size: int
    price: int
    notional: int
    maker: FillSide
    taker: FillSide
    open_interest: int
    fee_balance: int
    touched: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AppliedLiquidation:
    """``size`` lots of ``liquidated`` closed against ``maker`` at ``price``. The liquidated side
    paid no trading fee but ``penalty`` to the insurance fund; ``covered`` is the negative quote
    the fund absorbed when the position closed below zero (the sub-tick rounding of the
    bankruptcy bound, which is rounded against the liquidated side)."""

    market_id: int
    size: int
    price: int
    notional: int
    maker: FillSide
    liquidated: FillSide
    penalty: int
    covered: int
    insurance_fund: int
    open_interest: int
    fee_balance: int
    touched: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AppliedBackstop:
    """The insurance account took over ``size`` lots and ``quote`` of ``account_id``'s
    position (after ``funding``); ``insurance_position`` is its merged position (None when it
    netted to flat and its quote went to the fund)."""

    market_id: int
    account_id: int
    size: int
    quote: int
    funding: int
    insurance_funding: int
    insurance_position: Position | None
    insurance_fund: int
    insurance_equity: int
    open_interest: int
    touched: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AppliedDeleverage:
    """``size`` lots of the bankrupt position closed against ``counterparty`` for ``notional``
    (its share of the bankrupt quote: the bankruptcy price), without fees. ``touched`` includes
    the leaves read for the insurance fund's solvency (exchange, insurance positions, markets)."""

    market_id: int
    size: int
    notional: int
    bankrupt: FillSide
    counterparty: FillSide
    open_interest: int
    touched: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AppliedForcedWithdraw:
    """Forced request ``forced_index`` was served (the exchange's forced cursor advanced).

    ``paid`` = ``min(requested, free collateral)`` left the account to ``requester`` (its owner):
    when it is > 0 the batch builder appends ``(account_id, requester, paid)`` to the checkpoint's
    withdrawals tree, like a Withdraw. ``noop`` says why nothing was paid (``paid == 0``):
    ``unknown_account``, ``insurance_account``, ``not_owner``, ``bad_amount`` (0) or
    ``nothing_to_withdraw`` (no free collateral); None when the request was executed.
    ``collateral`` is the account's free collateral after (None without an account)."""

    forced_index: int
    account_id: int
    requester: str
    requested: int
    paid: int
    collateral: int | None
    noop: str | None
    touched: tuple[int, ...]
    withdrawal_index: int | None = None


@dataclass(frozen=True, slots=True)
class AppliedForcedExit:
    """Forced request ``forced_index`` was served (the exchange's forced cursor advanced).

    Executed (``noop`` None): after ``funding`` was settled, the position of ``size`` lots and
    ``quote`` was worth ``equity = quote + notional(size, mark_price)``; the insurance account
    took it over at the mark and ``paid = max(0, equity)`` left to ``requester`` (the owner)
    through the withdrawals tree (the builder appends ``(account_id, requester, paid)`` when it is
    > 0). The position leaf is deleted. ``insurance_position`` is the insurance account's merged
    position (None when it netted flat, or was not touched because the exited position was
    flat). A no-op (``paid == 0``, nothing but the cursor changed) says why in ``noop``:
    ``unknown_account``, ``insurance_account``, ``not_owner``, ``unknown_market`` or
    ``no_position``; the other fields are then 0 / None."""

    forced_index: int
    account_id: int
    market_id: int
    requester: str
    paid: int
    size: int
    quote: int
    equity: int
    mark_price: int
    funding: int
    insurance_funding: int
    insurance_position: Position | None
    insurance_fund: int
    open_interest: int
    noop: str | None
    touched: tuple[int, ...]
    withdrawal_index: int | None = None


Applied: TypeAlias = (
    AppliedDeposit
    | AppliedWithdraw
    | AppliedMarginTransfer
    | AppliedOrder
    | AppliedOrderClosed
    | AppliedPrice
    | AppliedFunding
    | AppliedFill
    | AppliedLiquidation
    | AppliedBackstop
    | AppliedDeleverage
    | AppliedForcedWithdraw
    | AppliedForcedExit
    | AppliedDepositRejected
    | AppliedFeeCollect
)


# ------------------------------------------------------------------------------------------------
# Rejections (fields the batch format could not carry are "malformed": see Ledger._plan)


def _reject(reason: str, message: str) -> TransitionRejected:
    return TransitionRejected(reason, message)


def _overflow(exc: ValueError) -> TransitionRejected:
    return _reject("overflow", f"a balance would leave its leaf range: {exc}")


def _only_reduced(old_size: int, new_size: int) -> bool:
    """The trade shrank |size| without flipping the side."""
    if new_size == 0:
        return old_size != 0
    return (new_size > 0) == (old_size > 0) and abs(new_size) < abs(old_size)


def _trade(
    pos: Position, delta: int, n: int, side_fee: int, price: int, market: Market
) -> tuple[Position, int]:
    """The position after trading ``delta`` lots (signed) for notional ``n``; the realized PnL.

    ``price`` only values the two parts of a flip (close all, open the rest)."""
    old = pos.size
    quote = pos.quote - n - side_fee if delta > 0 else pos.quote + n - side_fee
    basis = pos.basis
    realized = 0
    if old == 0 or (old > 0) == (delta > 0):  # open or increase
        basis += n if delta > 0 else -n
    else:  # reduce, close, or flip (close all, then open the rest)
        held = abs(old)
        closed = min(abs(delta), held)
        rest = abs(delta) - closed
        removed = arith.trunc_div(basis * closed, held)
        closed_notional = market.notional(closed, price) if rest else n
        realized = (1 if old > 0 else -1) * closed_notional - removed
        basis -= removed
        if rest:
            basis = (1 if delta > 0 else -1) * market.notional(rest, price)
    try:
        new = Position(pos.account_id, pos.market_id, old + delta, quote, basis, pos.funding_index)
    except ValueError as exc:
        raise _overflow(exc) from exc
    return new, realized


def _merge(held: Position, taken: Position) -> Position:
    """``taken`` added to ``held`` as-is (size, quote and basis); both settled to the same funding
    index. Opposite sizes net: the smaller one closes against the larger, whose basis shrinks
    pro rata (``trunc``), exactly like a reducing fill."""
    size = held.size + taken.size
    if held.size == 0 or taken.size == 0 or (held.size > 0) == (taken.size > 0):
        basis = held.basis + taken.basis
    elif size == 0:
        basis = 0
    else:
        big, small = (held, taken) if abs(held.size) > abs(taken.size) else (taken, held)
        basis = big.basis - arith.trunc_div(big.basis * abs(small.size), abs(big.size))
    try:
        return Position(
            held.account_id,
            held.market_id,
            size,
            held.quote + taken.quote,
            basis,
            held.funding_index,
        )
    except ValueError as exc:
        raise _overflow(exc) from exc


def _check_margin(before: Position, after: Position, market: Market) -> None:
    """dYdX's rule at the mark: the position must cover its initial margin after the trade, or
    the trade must only reduce it without lowering equity/MMR (cross-multiplied); a position
    that ends flat must keep ``quote >= 0``. Both positions have funding settled."""
    if after.size == 0:
        if after.quote < 0:
            raise _reject(
                "insufficient_margin",
                f"account {after.account_id}: closing leaves quote {after.quote} < 0",
            )
        return
    equity = risk.equity(after, market)
    required = risk.initial_requirement(after, market)
    if equity >= required:
        return
    if _only_reduced(before.size, after.size):
        mmr_before = risk.maintenance_requirement(before, market)
        mmr_after = risk.maintenance_requirement(after, market)
        equity_before = risk.equity(before, market)
        if mmr_after <= mmr_before and equity * mmr_before >= equity_before * mmr_after:
            return
    raise _reject(
        "insufficient_margin",
        f"account {after.account_id}: equity {equity} < initial margin {required} at mark "
        f"{market.mark_price}",
    )


def _check_grid(market: Market, size: int, price: int | None) -> None:
    if size == 0 or size % market.size_step:
        raise _reject("bad_size", f"size {size}: need > 0 and a multiple of {market.size_step}")
    if price is not None and (price == 0 or price % market.price_tick):
        raise _reject(
            "off_tick", f"price {price} is not a positive multiple of {market.price_tick}"
        )


def _check_fresh(market: Market, timestamp: int) -> None:
    if not market.mark_time <= timestamp <= market.mark_time + MAX_PRICE_AGE:
        raise _reject(
            "stale_price",
            f"market {market.market_id}: mark of {market.mark_time} is not within "
            f"{MAX_PRICE_AGE} s before {timestamp}",
        )


def _check_not_expired(order: Order, timestamp: int) -> None:
    if order.expiry != 0 and timestamp > order.expiry:
        raise _reject(
            "expired", f"order {order.account_id}/{order.nonce} expired at {order.expiry}"
        )


def _check_room(order: Order, size: int) -> None:
    if size > order.remaining:
        raise _reject(
            "overfill",
            f"order {order.account_id}/{order.nonce}: {size} lots but {order.remaining} left",
        )


_FIELDS: Final[dict[type, tuple[str, ...]]] = {
    cls: tuple(f.name for f in dataclasses.fields(cls))
    for cls in (Account, Position, Market, Exchange, Order)
}
_GET_FIELDS: Final[dict[type, Callable[[Any], tuple[Any, ...]]]] = {
    cls: operator.attrgetter(*names) for cls, names in _FIELDS.items()
}
_FIELD_POSITION: Final[dict[type, dict[str, int]]] = {
    cls: {name: i for i, name in enumerate(names)} for cls, names in _FIELDS.items()
}


def _rebuild(leaf: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` for leaf objects, several times faster (positional construction,
    still validated by ``__post_init__``). Raises ``ValueError`` / ``TypeError`` like it."""
    cls = type(leaf)
    values = list(_GET_FIELDS[cls](leaf))
    position = _FIELD_POSITION[cls]
    for name, value in changes.items():
        values[position[name]] = value
    return cls(*values)


def _filled(order: Order, size: int) -> Order:
    """``order`` with ``size`` more lots filled (validated: ``filled <= size`` still holds)."""
    return Order(
        order.account_id,
        order.slot,
        order.nonce,
        order.market_id,
        order.is_buy,
        order.price,
        order.size,
        order.filled + size,
        order.time_in_force,
        order.flags,
        order.expiry,
    )


@dataclass(slots=True)
class _Leg:
    """One position in a planned trade: funding settled (``before``), then traded (``after``)."""

    before: Position
    after: Position
    funding: int
    realized: int = 0
    fee: int = 0
    is_buy: bool = False
    is_maker: bool = False
    order: Order | None = None
    released: int = 0

    def side(self) -> FillSide:
        return FillSide(
            self.before.account_id,
            self.is_maker,
            self.is_buy,
            self.fee,
            self.realized,
            self.funding,
            self.released,
            None if self.after.size == 0 else self.after,
            self.order,
        )


# A plan: the result, the leaves to write (a WithdrawalLeaf among them is appended to the
# withdrawals tree; the exchange leaf written with it already holds the root after the append),
# and the position keys to delete.
_Plan: TypeAlias = tuple[
    Applied, tuple[Leaf | WithdrawalLeaf, ...], tuple[tuple[int, int], ...]
]

_NO_DELETES: Final[tuple[tuple[int, int], ...]] = ()


class Ledger:
    """The exchange state and its Merkle commitment; ``apply`` is the state transition function.

    Build one with ``Ledger.genesis(markets, domain, oracle, fee_recipient=...)`` (or
    ``Ledger.from_leaves`` to resume from a snapshot of leaves). ``oracle`` is the address whose
    EIP-712 signature PRICE records need; ``fee_recipient`` (the Settlement's operator) is paid the
    operator's part of FEE_COLLECT. Besides the state tree the ledger keeps the global withdrawals
    tree (its leaves, and the frontier that gives its root); the exchange leaf commits to it.
    See the module docstring for the invariants.
    """

    __slots__ = (
        "_accounts",
        "_exchange",
        "_leaves",
        "_markets",
        "_orders",
        "_owners",
        "_positions",
        "_tree",
        "_withdrawals",
        "_wtree",
        "domain",
        "fee_recipient",
        "oracle",
    )

    def __init__(self, domain: Domain, oracle: str, *, fee_recipient: str) -> None:
        """An empty ledger (no markets, no exchange leaf): use ``genesis`` or ``from_leaves``."""
        if not isinstance(domain, Domain):
            raise TypeError(f"domain must be a signing.Domain, got {type(domain).__name__}")
        try:
            self.oracle = checksum_address(oracle)
        except ValueError as exc:
            raise ConfigError(f"oracle: {exc}") from exc
        if int(self.oracle, 16) == 0:
            raise ConfigError("the oracle cannot be the zero address")
        try:
            self.fee_recipient = checksum_address(fee_recipient)
        except ValueError as exc:
            raise ConfigError(f"fee_recipient: {exc}") from exc
        if int(self.fee_recipient, 16) == 0:
            raise ConfigError("the fee recipient cannot be the zero address")
        self.domain = domain
        self._accounts: dict[int, Account] = {}
        self._owners: dict[str, int] = {}  # lower-case owner address -> account id
        self._positions: dict[tuple[int, int], Position] = {}
        self._orders: dict[tuple[int, int], Order] = {}  # (account id, slot) -> order
        self._markets: dict[int, Market] = {}
        self._exchange = Exchange.genesis()
        self._leaves: dict[int, bytes] = {}
        self._tree = SparseMerkleTree(STATE_TREE_DEPTH)
        self._withdrawals: list[WithdrawalLeaf] = []
        self._wtree = AppendOnlyTree(WITHDRAWAL_TREE_DEPTH)

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def genesis(
        cls, markets: Iterable[Market], domain: Domain, oracle: str, *, fee_recipient: str
    ) -> Ledger:
        """The genesis state: the market leaves, the insurance account and an exchange leaf of
        zeros with the empty withdrawals tree's root (``Exchange.genesis``)."""
        ledger = cls(domain, oracle, fee_recipient=fee_recipient)
        for market in markets:
            if not isinstance(market, Market):
                raise ConfigError(f"not a Market: {market!r}")
            if market.market_id in ledger._markets:
                raise ConfigError(f"duplicate market id {market.market_id}")
            if market.open_interest != 0:
                raise ConfigError(f"market {market.market_id} has open interest at genesis")
            ledger._put_market(market)
        ledger._put_account(Account(INSURANCE_ACCOUNT, ZERO_ADDRESS, 0, 0))
        ledger._put_exchange(Exchange.genesis())
        return ledger

    @classmethod
    def from_leaves(
        cls,
        leaves: Iterable[tuple[int, bytes]],
        domain: Domain,
        oracle: str,
        *,
        fee_recipient: str,
        withdrawals: Iterable[WithdrawalLeaf] = (),
    ) -> Ledger:
        """A ledger holding exactly the given ``(index, leaf bytes)`` (e.g. a snapshot) and the
        withdrawals tree of ``withdrawals`` (every leaf since genesis, in order); checks that
        every leaf sits at its own index and that the state is consistent (``check_invariants``
        without conservation, so the exchange leaf must commit to exactly those withdrawals).
        Raises ``ProtocolError``."""
        ledger = cls(domain, oracle, fee_recipient=fee_recipient)
        for w in withdrawals:
            ledger._put_withdrawal(w)
        seen_exchange = False
        for index, data in leaves:
            leaf = decode_leaf(data)
            if index_of(leaf) != index:
                raise ProtocolError(
                    f"leaf at index {index} belongs at {index_of(leaf)}", code="bad_leaf"
                )
            if index in ledger._leaves:
                raise ProtocolError(f"duplicate leaf index {index}", code="bad_leaf")
            if isinstance(leaf, Account) and leaf.owner.lower() in ledger._owners:
                raise ProtocolError(f"owner {leaf.owner} has two accounts", code="bad_leaf")
            if isinstance(leaf, Position) and leaf.is_empty:
                raise ProtocolError(f"empty position leaf at {index}", code="bad_leaf")
            seen_exchange = seen_exchange or isinstance(leaf, Exchange)
            ledger._put(leaf)
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
        other.oracle = self.oracle
        other.fee_recipient = self.fee_recipient
        other._withdrawals = list(self._withdrawals)
        other._wtree = self._wtree.copy()
        other._accounts = dict(self._accounts)
        other._owners = dict(self._owners)
        other._positions = dict(self._positions)
        other._orders = dict(self._orders)
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

    def order(self, account_id: int, slot: int) -> Order | None:
        """The order (or tombstone) in slot ``slot`` of ``account_id``, or None."""
        return self._orders.get((account_id, slot))

    def accounts(self) -> Iterator[Account]:
        """All accounts, by id (the insurance account last)."""
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

    def orders(self, *, account_id: int | None = None) -> Iterator[Order]:
        """Order slot leaves, by (account, slot), optionally of one account."""
        for key in sorted(self._orders):
            if account_id is None or key[0] == account_id:
                yield self._orders[key]

    def leaves(self) -> Iterator[tuple[int, bytes]]:
        """Every non-empty leaf as ``(index, leaf bytes)``, by index."""
        return ((i, self._leaves[i]) for i in sorted(self._leaves))

    def leaf_bytes(self, index: int) -> bytes | None:
        """The encoded leaf at ``index``, or None for an empty slot."""
        return self._leaves.get(index)

    def proof(self, index: int) -> list[bytes]:
        """The ``STATE_TREE_DEPTH`` sibling hashes of ``index``, bottom-up."""
        return self._tree.proof(index)

    def withdrawals(self, start: int = 0, end: int | None = None) -> list[WithdrawalLeaf]:
        """The leaves of the global withdrawals tree with index in ``[start, end)``."""
        return self._withdrawals[start:end]

    def withdrawals_tree(self, count: int | None = None) -> SparseMerkleTree:
        """The withdrawals tree holding its first ``count`` leaves (all by default): the tree as
        it was when the exchange leaf's ``withdrawal_count`` was ``count`` (it is append-only), so
        its proofs verify against that state's ``withdrawals_root``. O(count)."""
        size = len(self._withdrawals) if count is None else count
        if not 0 <= size <= len(self._withdrawals):
            raise ProtocolError(
                f"the withdrawals tree never had {size} leaves ({len(self._withdrawals)} now)",
                code="bad_index",
            )
        return AppendOnlyTree.sparse(
            WITHDRAWAL_TREE_DEPTH, (w.leaf_hash for w in self._withdrawals[:size])
        )

    def total_liabilities(self) -> int:
        """``sum(collateral) + sum(position quote) + insurance_fund + fee_balance`` (booked
        balances; pending funding is not included)."""
        return (
            sum(a.collateral for a in self._accounts.values())
            + sum(p.quote for p in self._positions.values())
            + self._exchange.insurance_fund
            + self._exchange.fee_balance
        )

    def pending_funding_total(self) -> int:
        """Sum over open positions of the funding that settling them now would book."""
        return sum(
            risk.pending_funding(p, self._markets[p.market_id]) for p in self._positions.values()
        )

    def funding_dust(self, net_deposits: int) -> int:
        """``net_deposits - (total_liabilities + pending_funding_total)``: what floored funding
        payments left in the vault, owned by nobody. Never negative (invariant 1)."""
        return net_deposits - self.total_liabilities() - self.pending_funding_total()

    def insurance_equity(self) -> int:
        """``insurance_fund`` plus the equity at the mark (with pending funding) of every position
        of the insurance account: the fund's solvency (a backstop keeps it ``>= 0``)."""
        return self._exchange.insurance_fund + sum(
            risk.equity(p, self._markets[p.market_id])
            for p in self.positions(account_id=INSURANCE_ACCOUNT)
        )

    def check_invariants(
        self, net_deposits: int | None = None, *, max_funding_dust: int | None = None
    ) -> None:
        """Verifies invariants 2-5 and 7 (and 1 when ``net_deposits`` = deposits taken off the
        queue - ``exchange.withdrawal_total`` is given;
        ``max_funding_dust`` bounds the dust from above, e.g. by the number of funding
        settlements). O(state). Raises ``InvariantViolation`` on the first violation."""
        self._check_accounts()
        self._check_positions()
        self._check_orders()
        self._check_withdrawals()
        if net_deposits is not None:
            dust = self.funding_dust(net_deposits)
            if dust < 0 or (max_funding_dust is not None and dust > max_funding_dust):
                raise InvariantViolation(
                    f"conservation: funding dust {dust} (net deposits {net_deposits}, "
                    f"liabilities {self.total_liabilities()}, pending funding "
                    f"{self.pending_funding_total()}) is outside [0, {max_funding_dust}]"
                )

    def _check_accounts(self) -> None:
        ex = self._exchange
        ids = sorted(self._accounts)
        if ids != [*range(ex.next_account_id), INSURANCE_ACCOUNT]:
            raise InvariantViolation(
                f"account ids are not 0..{ex.next_account_id - 1} and {INSURANCE_ACCOUNT}"
            )
        if self._accounts[INSURANCE_ACCOUNT] != Account(INSURANCE_ACCOUNT, ZERO_ADDRESS, 0, 0):
            raise InvariantViolation("the insurance account changed")
        if len(self._owners) != len(self._accounts) or any(
            self._owners.get(a.owner.lower()) != a.account_id for a in self._accounts.values()
        ):
            raise InvariantViolation("owner index does not match the accounts")

    def _check_positions(self) -> None:
        sizes = dict.fromkeys(self._markets, 0)
        longs = dict.fromkeys(self._markets, 0)
        for (account_id, market_id), pos in self._positions.items():
            where = f"position ({account_id}, {market_id})"
            if account_id not in self._accounts or market_id not in self._markets:
                raise InvariantViolation(f"{where} has no account or market")
            if pos.is_empty:
                raise InvariantViolation(f"empty {where} has a leaf")
            if pos.size == 0 and pos.basis != 0:
                raise InvariantViolation(f"flat {where} has basis {pos.basis}")
            sizes[market_id] += pos.size
            longs[market_id] += max(pos.size, 0)
        for market_id, market in self._markets.items():
            if sizes[market_id] != 0:
                raise InvariantViolation(f"market {market_id}: sizes sum to {sizes[market_id]}")
            if longs[market_id] != market.open_interest:
                raise InvariantViolation(
                    f"market {market_id}: open interest {market.open_interest} "
                    f"!= {longs[market_id]}"
                )

    def _check_withdrawals(self) -> None:
        ex = self._exchange
        if (
            ex.withdrawal_count != len(self._withdrawals)
            or ex.withdrawals_root != self._wtree.root
            or ex.withdrawal_total != sum(w.amount for w in self._withdrawals)
        ):
            raise InvariantViolation(
                f"the exchange leaf's withdrawals ({ex.withdrawal_count} leaves, total "
                f"{ex.withdrawal_total}) do not match the withdrawals tree "
                f"({len(self._withdrawals)} leaves)"
            )

    def _check_orders(self) -> None:
        for (account_id, slot), order in self._orders.items():
            if account_id not in self._accounts:
                raise InvariantViolation(f"order ({account_id}, {slot}) has no account")
            if order.size and order.market_id not in self._markets:
                raise InvariantViolation(f"order ({account_id}, {slot}) has no market")

    # -- the transition function -----------------------------------------------------------------

    @overload
    def apply(self, t: Deposit) -> AppliedDeposit: ...
    @overload
    def apply(self, t: Withdraw) -> AppliedWithdraw: ...
    @overload
    def apply(self, t: MarginTransfer) -> AppliedMarginTransfer: ...
    @overload
    def apply(self, t: Fill) -> AppliedFill: ...
    @overload
    def apply(self, t: PlaceOrder) -> AppliedOrder: ...
    @overload
    def apply(self, t: CancelOrder) -> AppliedOrderClosed: ...
    @overload
    def apply(self, t: OrderDone) -> AppliedOrderClosed: ...
    @overload
    def apply(self, t: PriceUpdate) -> AppliedPrice: ...
    @overload
    def apply(self, t: Funding) -> AppliedFunding: ...
    @overload
    def apply(self, t: Liquidate) -> AppliedLiquidation: ...
    @overload
    def apply(self, t: Backstop) -> AppliedBackstop: ...
    @overload
    def apply(self, t: Deleverage) -> AppliedDeleverage: ...
    @overload
    def apply(self, t: ForcedWithdraw) -> AppliedForcedWithdraw: ...
    @overload
    def apply(self, t: ForcedExit) -> AppliedForcedExit: ...
    @overload
    def apply(self, t: DepositRejected) -> AppliedDepositRejected: ...
    @overload
    def apply(self, t: FeeCollect) -> AppliedFeeCollect: ...

    def apply(self, t: Transition) -> Applied:
        """Applies ``t`` or raises ``TransitionRejected`` (state unchanged). Returns the
        ``Applied...`` result of its type (``AppliedFill`` for a ``Fill``, ...)."""
        result, writes, deletes = self._plan(t)
        for key in deletes:
            self._delete_position(key)
        for leaf in writes:
            _PUTTERS[type(leaf)](self, leaf)
        return result

    @overload
    def validate(self, t: Deposit) -> AppliedDeposit: ...
    @overload
    def validate(self, t: Withdraw) -> AppliedWithdraw: ...
    @overload
    def validate(self, t: MarginTransfer) -> AppliedMarginTransfer: ...
    @overload
    def validate(self, t: Fill) -> AppliedFill: ...
    @overload
    def validate(self, t: PlaceOrder) -> AppliedOrder: ...
    @overload
    def validate(self, t: CancelOrder) -> AppliedOrderClosed: ...
    @overload
    def validate(self, t: OrderDone) -> AppliedOrderClosed: ...
    @overload
    def validate(self, t: PriceUpdate) -> AppliedPrice: ...
    @overload
    def validate(self, t: Funding) -> AppliedFunding: ...
    @overload
    def validate(self, t: Liquidate) -> AppliedLiquidation: ...
    @overload
    def validate(self, t: Backstop) -> AppliedBackstop: ...
    @overload
    def validate(self, t: Deleverage) -> AppliedDeleverage: ...
    @overload
    def validate(self, t: ForcedWithdraw) -> AppliedForcedWithdraw: ...
    @overload
    def validate(self, t: ForcedExit) -> AppliedForcedExit: ...
    @overload
    def validate(self, t: DepositRejected) -> AppliedDepositRejected: ...
    @overload
    def validate(self, t: FeeCollect) -> AppliedFeeCollect: ...

    def validate(self, t: Transition) -> Applied:
        """What ``apply(t)`` would return, changing nothing (raises the same rejections)."""
        return self._plan(t)[0]

    def _plan(self, t: Transition) -> _Plan:
        planner = _PLANNERS.get(type(t))
        if planner is None:
            raise TypeError(f"not a transition: {type(t).__name__}")
        # Every field against the record table (protocol.records): what the batch cannot carry.
        codec = BY_CLASS.get(type(t))
        if codec is None:
            raise TypeError(f"{type(t).__name__} has no record layout in protocol.records")
        error = codec.field_error(t)
        if error is not None:
            raise _reject("malformed", error)
        return planner(self, t)

    # -- shared checks (read only) ---------------------------------------------------------------

    def _market_of(self, market_id: int) -> Market:
        market = self._markets.get(market_id)
        if market is None:
            raise _reject("unknown_market", f"no market {market_id}")
        return market

    def _account_of(self, account_id: int) -> Account:
        account = self._accounts.get(account_id)
        if account is None:
            raise _reject("unknown_account", f"no account {account_id}")
        return account

    def _check_signature(self, t: SignedRequest, signer: str) -> None:
        """``t.signature`` recovers to ``signer`` over ``t``'s EIP-712 digest."""
        try:
            recovered = recover_signer(request_digest(self.domain, t), t.signature)
        except ProtocolError as exc:
            raise _reject("bad_signature", exc.message) from exc
        if recovered != signer:
            raise _reject("bad_signature", f"signed by {recovered}, not {signer}")

    def _check_owner_signature(self, t: PlaceOrder | CancelOrder, account: Account) -> None:
        """The owner's signature; the insurance account's orders carry ``NO_SIGNATURE``."""
        if account.account_id != INSURANCE_ACCOUNT:
            self._check_signature(t, account.owner)
        elif t.signature != NO_SIGNATURE:
            raise _reject("bad_signature", "insurance orders carry 65 zero bytes as signature")

    def _settled_position(self, account_id: int, market: Market) -> tuple[Position, int]:
        """The account's position in ``market`` with funding settled, and the funding booked."""
        if account_id not in self._accounts:
            raise _reject("unknown_account", f"no account {account_id}")
        pos = self._positions.get((account_id, market.market_id))
        if pos is None:
            raise _reject(
                "no_position",
                f"account {account_id} has no position in market {market.market_id}",
            )
        try:
            return risk.settle_funding(pos, market)
        except ValueError as exc:
            raise _overflow(exc) from exc

    def _open_position(self, account_id: int, market: Market) -> tuple[Position, int]:
        """Like ``_settled_position``, for a position that must be open (size != 0)."""
        pos, funding = self._settled_position(account_id, market)
        if pos.size == 0:
            raise _reject(
                "no_position", f"account {account_id} is flat in market {market.market_id}"
            )
        return pos, funding

    def _live_order(self, account_id: int, slot: int) -> Order:
        order = self._orders.get((account_id, slot))
        if order is None:
            raise _reject("no_order", f"account {account_id} has no order in slot {slot}")
        if not order.live:
            raise _reject("order_closed", f"order {account_id}/{order.nonce} is closed")
        return order

    def _maker_order(
        self, maker_id: int, slot: int, market_id: int, price: int, size: int, timestamp: int
    ) -> Order:
        """The resting maker order of a fill or liquidation, checked for this trade."""
        order = self._live_order(maker_id, slot)
        if order.market_id != market_id:
            raise _reject("market_mismatch", f"maker order is for market {order.market_id}")
        if order.time_in_force != TIF_GTC:
            raise _reject("maker_not_resting", "an IOC/FOK order never rests on the book")
        if order.price != price:
            raise _reject("maker_price", f"price {price} != the maker's {order.price}")
        _check_not_expired(order, timestamp)
        _check_room(order, size)
        return order

    def _taker_order(self, t: Fill, maker: Order) -> Order:
        order = self._live_order(t.taker_id, t.taker_slot)
        if order.market_id != t.market_id:
            raise _reject("market_mismatch", f"taker order is for market {order.market_id}")
        if order.is_buy == maker.is_buy:
            raise _reject("same_side", "maker and taker orders are on the same side")
        if order.post_only:
            raise _reject("post_only_taker", "a post-only order can never take")
        if (order.price < t.price) if order.is_buy else (order.price > t.price):
            raise _reject("taker_price", f"price {t.price} is beyond the limit {order.price}")
        _check_not_expired(order, t.timestamp)
        _check_room(order, t.size)
        return order

    def _trade_leg(
        self,
        pos: Position,
        funding: int,
        delta: int,
        n: int,
        side_fee: int,
        price: int,
        market: Market,
        order: Order | None,
        *,
        check_margin: bool = True,
    ) -> _Leg:
        """One side of a trade: the trade itself, reduce-only, and (for users) the margin rule."""
        after, realized = _trade(pos, delta, n, side_fee, price, market)
        if order is not None and order.reduce_only and not _only_reduced(pos.size, after.size):
            raise _reject(
                "reduce_only",
                f"order {order.account_id}/{order.nonce} would take the position from "
                f"{pos.size} to {after.size}",
            )
        if check_margin and pos.account_id != INSURANCE_ACCOUNT:
            _check_margin(pos, after, market)
        return _Leg(
            pos,
            after,
            funding,
            realized,
            side_fee,
            delta > 0,
            False,
            None if order is None else _filled(order, abs(delta)),
        )

    def _book(
        self, market: Market, exchange: Exchange, legs: Sequence[_Leg], writes: list[Leaf]
    ) -> tuple[Market, Exchange, list[tuple[int, int]], list[int]]:
        """Writes the legs: open positions and orders are written; a position that ended flat is
        deleted and its quote released to free collateral (to the fund for the insurance
        account). Returns the market (open interest) and exchange after, the deletes and the
        touched leaf indices; appends the leaves to ``writes``."""
        deletes: list[tuple[int, int]] = []
        touched: list[int] = []
        open_interest = market.open_interest
        for leg in legs:
            account_id = leg.before.account_id
            open_interest += max(leg.after.size, 0) - max(leg.before.size, 0)
            touched.append(position_index(account_id, market.market_id))
            if leg.order is not None:
                writes.append(leg.order)
                touched.append(order_index(account_id, leg.order.slot))
            if leg.after.size != 0:
                writes.append(leg.after)
                continue
            deletes.append((account_id, market.market_id))
            leg.released = released = leg.after.quote
            if account_id == INSURANCE_ACCOUNT:
                fund = exchange.insurance_fund + released
                exchange = self._replace(exchange, insurance_fund=fund)
            elif released < 0:
                raise _reject(
                    "insufficient_margin",
                    f"account {account_id}: closing leaves quote {released} < 0",
                )
            elif released:
                account = self._accounts[account_id]
                writes.append(self._replace(account, collateral=account.collateral + released))
                touched.append(account_index(account_id))
        if open_interest != market.open_interest:
            market = self._replace(market, open_interest=open_interest)
            writes.append(market)
        touched.append(market_index(market.market_id))
        if exchange != self._exchange:
            writes.append(exchange)
            touched.append(EXCHANGE_INDEX)
        return market, exchange, deletes, touched

    @staticmethod
    def _replace(leaf: Any, **changes: int) -> Any:
        try:
            return _rebuild(leaf, **changes)
        except ValueError as exc:
            raise _overflow(exc) from exc

    # -- planners: validate and compute, never mutate ------------------------------------------

    def _check_deposit_entry(self, t: Deposit | DepositRejected) -> tuple[str, int | None]:
        """The checks a Deposit and a DepositRejected share, in order: the queue position, the
        owner (never the insurance account's), the account id (the owner's own, or
        ``nextAccountId`` for a new owner), ``amount > 0``. Returns (owner, its account or None)."""
        ex = self._exchange
        if t.deposit_index != ex.deposit_cursor:
            raise _reject(
                "deposit_out_of_order",
                f"deposit {t.deposit_index} is not the next in the queue ({ex.deposit_cursor})",
            )
        owner = checksum_address(t.owner)
        existing = self._owners.get(owner.lower())
        if existing == INSURANCE_ACCOUNT:
            raise _reject("insurance_account", "the insurance account never takes deposits")
        if existing is not None and t.account_id != existing:
            raise _reject("bad_account_id", f"{owner} owns account {existing}, not {t.account_id}")
        if existing is None and t.account_id != ex.next_account_id:
            raise _reject(
                "bad_account_id",
                f"a new owner gets account {ex.next_account_id}, not {t.account_id}",
            )
        if t.amount == 0:
            raise _reject("bad_amount", "deposit amount must be > 0")
        return owner, existing

    def _plan_deposit(self, t: Deposit) -> _Plan:
        account_id, amount = t.account_id, t.amount
        owner, existing = self._check_deposit_entry(t)
        ex = self._exchange
        created = existing is None
        if created and account_id >= INSURANCE_ACCOUNT:
            raise _reject("accounts_full", f"all {INSURANCE_ACCOUNT} account ids are taken")
        old = self._accounts.get(account_id)
        if old is not None and old.collateral + amount > UINT128_MAX:
            raise _reject(
                "collateral_overflow",
                f"account {account_id} holds {old.collateral}: {amount} more leaves uint128",
            )
        try:
            if old is None:
                account = Account(account_id, owner, amount, 0)
            else:
                account = Account(account_id, old.owner, old.collateral + amount, old.nonce)
            exchange = _rebuild(
                ex,
                next_account_id=ex.next_account_id + created,
                deposit_cursor=ex.deposit_cursor + 1,
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
        account = self._account_of(t.account_id)
        self._check_signature(t, account.owner)
        if t.nonce != account.nonce:
            raise _reject("bad_nonce", f"nonce {t.nonce}, expected {account.nonce}")
        return account

    def _plan_withdraw(self, t: Withdraw) -> _Plan:
        recipient = checksum_address(t.recipient)
        amount = t.amount
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
        exchange, leaf = self._pay(self._exchange, account.account_id, recipient, amount)
        result = AppliedWithdraw(
            account.account_id,
            recipient,
            amount,
            new.collateral,
            (account_index(t.account_id), EXCHANGE_INDEX),
            self._exchange.withdrawal_count,
        )
        return result, (new, exchange, leaf), _NO_DELETES

    def _margin_position(
        self, account: Account, market: Market, amount: int
    ) -> tuple[Position, int]:
        """The position a margin move applies to, funding settled (created when moving in)."""
        key = (account.account_id, market.market_id)
        pos = self._positions.get(key)
        if amount > 0:
            if amount > account.collateral:
                raise _reject(
                    "insufficient_collateral",
                    f"moving {amount} in with {account.collateral} free collateral",
                )
            if pos is None:
                return Position(key[0], key[1], 0, 0, 0, market.funding_index), 0
        elif pos is None:
            raise _reject(
                "no_position", f"account {key[0]} has no position in market {market.market_id}"
            )
        try:
            return risk.settle_funding(pos, market)
        except ValueError as exc:
            raise _overflow(exc) from exc

    def _plan_margin_transfer(self, t: MarginTransfer) -> _Plan:
        market_id, amount = t.market_id, t.amount
        account = self._signed_account(t)
        market = self._market_of(market_id)
        if amount == 0:
            raise _reject("bad_amount", "margin transfer amount must be != 0")
        pos, funding = self._margin_position(account, market, amount)
        new_pos = self._replace(pos, quote=pos.quote + amount)
        if amount < 0:
            if pos.size == 0 and new_pos.quote < 0:
                raise _reject(
                    "insufficient_margin", f"moving {-amount} out leaves quote {new_pos.quote} < 0"
                )
            equity = risk.equity(new_pos, market)
            required = risk.initial_requirement(new_pos, market)
            if pos.size != 0 and equity < required:
                raise _reject(
                    "insufficient_margin",
                    f"equity {equity} after the move < initial margin {required}",
                )
        try:
            new_account = Account(
                account.account_id, account.owner, account.collateral - amount, t.nonce + 1
            )
        except ValueError as exc:
            raise _overflow(exc) from exc
        key = (account.account_id, market_id)
        deleted = new_pos.is_empty
        result = AppliedMarginTransfer(
            account.account_id,
            market_id,
            amount,
            new_account.collateral,
            None if deleted else new_pos,
            (account_index(key[0]), position_index(*key), market_index(market_id)),
            funding,
        )
        if deleted:
            return result, (new_account,), (key,)
        return result, (new_account, new_pos), _NO_DELETES

    # -- orders --

    def _plan_order(self, t: PlaceOrder) -> _Plan:
        account = self._account_of(t.account_id)
        self._check_owner_signature(t, account)
        market = self._market_of(t.market_id)
        post_only_ioc = t.flags & FLAG_POST_ONLY and t.time_in_force != TIF_GTC
        if t.time_in_force > TIF_FOK or t.flags & ~ORDER_FLAGS_MASK or post_only_ioc:
            raise _reject("bad_order", f"time in force {t.time_in_force} with flags {t.flags:#x}")
        if t.price == 0 or t.price % market.price_tick:
            raise _reject(
                "off_tick", f"price {t.price} is not a positive multiple of {market.price_tick}"
            )
        if t.size == 0 or t.size < market.min_size or t.size % market.size_step:
            raise _reject(
                "bad_size",
                f"size {t.size}: need >= {market.min_size} and a multiple of {market.size_step}",
            )
        if account.account_id == INSURANCE_ACCOUNT and not t.flags & FLAG_REDUCE_ONLY:
            raise _reject("insurance_account", "insurance orders must be reduce-only")
        slot = t.nonce % ORDER_SLOTS
        held = self._orders.get((t.account_id, slot))
        if held is not None and held.nonce == t.nonce:
            raise _reject("order_exists", f"order {t.account_id}/{t.nonce} is already registered")
        if held is not None and held.nonce > t.nonce:
            raise _reject("stale_nonce", f"slot {slot} holds the newer nonce {held.nonce}")
        order = Order(
            t.account_id,
            slot,
            t.nonce,
            t.market_id,
            t.is_buy,
            t.price,
            t.size,
            0,
            t.time_in_force,
            t.flags,
            t.expiry,
        )
        touched = (account_index(t.account_id), market_index(t.market_id), index_of(order))
        return AppliedOrder(order, held, touched), (order,), _NO_DELETES

    def _plan_cancel(self, t: CancelOrder) -> _Plan:
        account = self._account_of(t.account_id)
        self._check_owner_signature(t, account)
        slot = t.nonce % ORDER_SLOTS
        held = self._orders.get((t.account_id, slot))
        if held is not None and held.nonce > t.nonce:
            raise _reject("stale_nonce", f"slot {slot} holds the newer nonce {held.nonce}")
        if held is not None and held.nonce == t.nonce:
            if not held.live:
                raise _reject("order_closed", f"order {t.account_id}/{t.nonce} is closed")
            order = _rebuild(held, size=held.filled)
        else:
            order = Order.tombstone(t.account_id, t.nonce)
        tombstone = held is None or held.nonce != t.nonce
        touched = (account_index(t.account_id), index_of(order))
        return AppliedOrderClosed(order, tombstone, touched), (order,), _NO_DELETES

    def _plan_order_done(self, t: OrderDone) -> _Plan:
        held = self._live_order(t.account_id, t.slot)
        if held.time_in_force not in (TIF_IOC, TIF_FOK):
            raise _reject("not_ioc", f"order {t.account_id}/{held.nonce} is good till cancelled")
        order = _rebuild(held, size=held.filled)
        return AppliedOrderClosed(order, False, (index_of(order),)), (order,), _NO_DELETES

    # -- oracle and funding --

    def _plan_price(self, t: PriceUpdate) -> _Plan:
        market = self._market_of(t.market_id)
        self._check_signature(t, self.oracle)
        if t.price == 0:
            raise _reject("bad_price", "a mark price must be > 0")
        if t.timestamp <= market.mark_time:
            raise _reject(
                "price_not_newer", f"timestamp {t.timestamp} <= mark time {market.mark_time}"
            )
        new = _rebuild(market, mark_price=t.price, mark_time=t.timestamp)
        result = AppliedPrice(t.market_id, t.price, t.timestamp, (market_index(t.market_id),))
        return result, (new,), _NO_DELETES

    def _plan_funding(self, t: Funding) -> _Plan:
        market = self._market_of(t.market_id)
        if t.timestamp <= market.funding_time:
            raise _reject(
                "funding_not_newer",
                f"timestamp {t.timestamp} <= funding time {market.funding_time}",
            )
        cap = FUNDING_RATE_CAP_MULTIPLE * (market.imf_ppm - market.mmf_ppm)
        if abs(t.rate_ppm) > cap:
            raise _reject("funding_rate_cap", f"|rate| {abs(t.rate_ppm)} ppm > cap {cap} ppm")
        _check_fresh(market, t.timestamp)
        dt = t.timestamp - market.funding_time if market.funding_time else 0
        delta = arith.funding_index_delta(t.rate_ppm, dt, market.mark_price, market.notional_exp)
        new = self._replace(
            market, funding_index=market.funding_index + delta, funding_time=t.timestamp
        )
        result = AppliedFunding(
            t.market_id, t.rate_ppm, dt, delta, new.funding_index, (market_index(t.market_id),)
        )
        return result, (new,), _NO_DELETES

    # -- trading --

    def _plan_fill(self, t: Fill) -> _Plan:
        market = self._market_of(t.market_id)
        _check_grid(market, t.size, t.price)
        if t.maker_id == t.taker_id:
            raise _reject("self_trade", f"account {t.maker_id} is both maker and taker")
        maker_order = self._maker_order(
            t.maker_id, t.maker_slot, t.market_id, t.price, t.size, t.timestamp
        )
        taker_order = self._taker_order(t, maker_order)
        maker_pos, maker_funding = self._settled_position(t.maker_id, market)
        taker_pos, taker_funding = self._settled_position(t.taker_id, market)

        n = market.notional(t.size, t.price)
        maker_fee = arith.fee(n, market.maker_fee_ppm)
        taker_fee = arith.fee(n, market.taker_fee_ppm)
        ex = self._exchange
        fee_balance = ex.fee_balance + maker_fee + taker_fee
        if fee_balance < 0:
            raise _reject(
                "fee_underflow", f"the maker rebate would take the fee balance to {fee_balance}"
            )
        taker_delta = t.size if taker_order.is_buy else -t.size
        maker = self._trade_leg(
            maker_pos, maker_funding, -taker_delta, n, maker_fee, t.price, market, maker_order
        )
        maker.is_maker = True
        taker = self._trade_leg(
            taker_pos, taker_funding, taker_delta, n, taker_fee, t.price, market, taker_order
        )
        writes: list[Leaf] = []
        exchange = self._replace(ex, fee_balance=fee_balance)
        market, exchange, deletes, touched = self._book(market, exchange, (maker, taker), writes)
        result = AppliedFill(
            t.market_id,
            t.size,
            t.price,
            n,
            maker.side(),
            taker.side(),
            market.open_interest,
            exchange.fee_balance,
            tuple(touched),
        )
        return result, tuple(writes), tuple(deletes)

    def _liquidatable(
        self, account_id: int, market: Market, timestamp: int
    ) -> tuple[Position, int]:
        """The position of a liquidation or backstop, funding settled, checked liquidatable at a
        fresh mark."""
        if account_id == INSURANCE_ACCOUNT:
            raise _reject("insurance_account", "the insurance account is never liquidated")
        pos, funding = self._open_position(account_id, market)
        _check_fresh(market, timestamp)
        if not risk.is_liquidatable(pos, market):
            raise _reject(
                "not_liquidatable",
                f"account {account_id}: equity {risk.equity(pos, market)} >= maintenance "
                f"{risk.maintenance_requirement(pos, market)} at mark {market.mark_price}",
            )
        return pos, funding

    def _plan_liquidate(self, t: Liquidate) -> _Plan:
        market = self._market_of(t.market_id)
        _check_grid(market, t.size, t.price)
        if t.maker_id == t.account_id:
            raise _reject("self_trade", f"account {t.maker_id} cannot take over its own position")
        pos, funding = self._liquidatable(t.account_id, market, t.timestamp)
        if t.size > abs(pos.size):
            raise _reject("liquidation_size", f"{t.size} lots of a position of {pos.size}")
        maker_order = self._maker_order(
            t.maker_id, t.maker_slot, t.market_id, t.price, t.size, t.timestamp
        )
        if maker_order.is_buy != (pos.size > 0):
            raise _reject("same_side", "the maker order must take the opposite side")
        bankruptcy = risk.bankruptcy_price(pos, market, on_tick=True)
        assert bankruptcy is not None  # the position is open
        if (t.price < bankruptcy) if pos.size > 0 else (t.price > bankruptcy):
            raise _reject(
                "beyond_bankruptcy", f"price {t.price} is worse than bankruptcy {bankruptcy}"
            )
        maker_pos, maker_funding = self._settled_position(t.maker_id, market)
        n = market.notional(t.size, t.price)
        maker_fee = max(0, arith.fee(n, market.maker_fee_ppm))  # no rebate on liquidations
        delta = -t.size if pos.size > 0 else t.size
        maker = self._trade_leg(
            maker_pos, maker_funding, -delta, n, maker_fee, t.price, market, maker_order
        )
        maker.is_maker = True
        after, realized = _trade(pos, delta, n, 0, t.price, market)
        left = after.quote + market.notional(after.size, t.price)  # equity at the fill price
        penalty = min(arith.ceil_div(n * LIQUIDATION_FEE_PPM, PPM), max(0, left))
        covered = max(0, penalty - after.quote) if after.size == 0 else 0
        after = self._replace(after, quote=after.quote - penalty + covered)
        liquidated = _Leg(pos, after, funding, realized, 0, delta > 0)
        ex = self._exchange
        exchange = self._replace(
            ex,
            fee_balance=ex.fee_balance + maker_fee,
            insurance_fund=ex.insurance_fund + penalty - covered,
        )
        writes: list[Leaf] = []
        market, exchange, deletes, touched = self._book(
            market, exchange, (maker, liquidated), writes
        )
        result = AppliedLiquidation(
            t.market_id,
            t.size,
            t.price,
            n,
            maker.side(),
            liquidated.side(),
            penalty,
            covered,
            exchange.insurance_fund,
            market.open_interest,
            exchange.fee_balance,
            tuple(touched),
        )
        return result, tuple(writes), tuple(deletes)

    def _takeover(self, market: Market, pos: Position) -> tuple[Position, int, Exchange, int]:
        """The insurance account's position after taking ``pos`` over (settled), its funding, the
        exchange after (the merged quote goes to the fund if it nets flat), and the fund's
        equity after: ``insurance_fund + sum(equity at mark of all insurance positions)``."""
        key = (INSURANCE_ACCOUNT, market.market_id)
        held = self._positions.get(key)
        funding = 0
        if held is None:
            held = Position(INSURANCE_ACCOUNT, market.market_id, 0, 0, 0, market.funding_index)
        else:
            try:
                held, funding = risk.settle_funding(held, market)
            except ValueError as exc:
                raise _overflow(exc) from exc
        merged = _merge(held, pos)
        ex = self._exchange
        if merged.size == 0:
            ex = self._replace(ex, insurance_fund=ex.insurance_fund + merged.quote)
        solvency = ex.insurance_fund + risk.equity(merged, market)
        for other in self.positions(account_id=INSURANCE_ACCOUNT):
            if other.market_id != market.market_id:
                solvency += risk.equity(other, self._markets[other.market_id])
        return merged, funding, ex, solvency

    def _plan_backstop(self, t: Backstop) -> _Plan:
        market = self._market_of(t.market_id)
        pos, funding = self._liquidatable(t.account_id, market, t.timestamp)
        merged, insurance_funding, exchange, solvency = self._takeover(market, pos)
        if solvency < 0:
            raise _reject(
                "insurance_insolvent",
                f"the fund's equity would be {solvency} after taking the position over",
            )
        held = self._positions.get((INSURANCE_ACCOUNT, t.market_id))
        open_interest = (
            market.open_interest
            + max(merged.size, 0)
            - max(pos.size, 0)
            - max(0 if held is None else held.size, 0)
        )
        writes: list[Leaf] = []
        deletes = [(t.account_id, t.market_id)]
        if merged.size == 0:
            deletes.append((INSURANCE_ACCOUNT, t.market_id))
        else:
            writes.append(merged)
        market = self._replace(market, open_interest=open_interest)
        writes.append(market)
        touched = [
            position_index(t.account_id, t.market_id),
            position_index(INSURANCE_ACCOUNT, t.market_id),
            market_index(t.market_id),
        ]
        if exchange != self._exchange:
            writes.append(exchange)
            touched.append(EXCHANGE_INDEX)
        for other in self.positions(account_id=INSURANCE_ACCOUNT):
            if other.market_id != t.market_id:
                touched += [index_of(other), market_index(other.market_id)]
        result = AppliedBackstop(
            t.market_id,
            t.account_id,
            pos.size,
            pos.quote,
            funding,
            insurance_funding,
            None if merged.size == 0 else merged,
            exchange.insurance_fund,
            solvency,
            open_interest,
            tuple(touched),
        )
        return result, tuple(writes), tuple(deletes)

    def _plan_deleverage(self, t: Deleverage) -> _Plan:
        market = self._market_of(t.market_id)
        _check_grid(market, t.size, None)
        if t.account_id == INSURANCE_ACCOUNT:
            raise _reject("insurance_account", "the insurance account is never deleveraged")
        if t.counterparty_id == t.account_id:
            raise _reject("self_trade", f"account {t.account_id} cannot be its own counterparty")
        pos, funding = self._open_position(t.account_id, market)
        _check_fresh(market, t.timestamp)
        if not risk.is_bankrupt(pos, market):
            raise _reject(
                "not_bankrupt", f"equity {risk.equity(pos, market)} at the mark is not negative"
            )
        if t.size > abs(pos.size):
            raise _reject("liquidation_size", f"{t.size} lots of a position of {pos.size}")
        solvency = self._takeover(market, pos)[3]
        if solvency >= 0:
            raise _reject(
                "insurance_solvent", f"the fund can take the position over (equity {solvency})"
            )
        other, other_funding = self._settled_position(t.counterparty_id, market)
        if other.size * pos.size >= 0 or abs(other.size) < t.size:
            raise _reject(
                "counterparty_size",
                f"counterparty holds {other.size}, needs at least {t.size} against {pos.size}",
            )
        # the counterparty's quote moves by floor(quote * size / |pos.size|): its share of the
        # bankrupt quote, rounded against the counterparty; the whole quote on a full close
        moved = arith.floor_div(pos.quote * t.size, abs(pos.size))
        n = -moved if pos.size > 0 else moved
        delta = -t.size if pos.size > 0 else t.size
        bankrupt_after, realized = _trade(pos, delta, n, 0, 0, market)
        bankrupt = _Leg(pos, bankrupt_after, funding, realized, 0, delta > 0)
        counterparty = self._trade_leg(
            other, other_funding, -delta, n, 0, 0, market, None, check_margin=False
        )
        writes: list[Leaf] = []
        market, _, deletes, touched = self._book(
            market, self._exchange, (bankrupt, counterparty), writes
        )
        touched.append(EXCHANGE_INDEX)  # read: the fund's solvency (it cannot take this over)
        for held in self.positions(account_id=INSURANCE_ACCOUNT):
            touched += [index_of(held), market_index(held.market_id)]
        result = AppliedDeleverage(
            t.market_id,
            t.size,
            n,
            bankrupt.side(),
            counterparty.side(),
            market.open_interest,
            tuple(dict.fromkeys(touched)),
        )
        return result, tuple(writes), tuple(deletes)

    # -- forced requests (the L1 queue; never rejected once in order) --

    def _forced_account(
        self, t: ForcedWithdraw | ForcedExit
    ) -> tuple[Exchange, str, Account | None, str | None, list[int]]:
        """The checks every forced request shares. Rejects only what the batch could not carry
        (``malformed``) and a request out of queue order; then returns the exchange with the
        cursor advanced, the checksummed requester, the account (None if it does not exist), the
        no-op reason so far (None: the requester owns an ordinary account) and the leaves read."""
        forced_index, account_id = t.forced_index, t.account_id
        requester = checksum_address(t.requester)
        ex = self._exchange
        if forced_index != ex.forced_cursor:
            raise _reject(
                "forced_out_of_order",
                f"forced request {forced_index} is not the next in the queue ({ex.forced_cursor})",
            )
        exchange = self._replace(ex, forced_cursor=ex.forced_cursor + 1)
        touched = [EXCHANGE_INDEX]
        if account_id >= MAX_ACCOUNTS:  # the contract bounds ids; a slot that cannot exist
            return exchange, requester, None, "unknown_account", touched
        touched.append(account_index(account_id))
        account = self._accounts.get(account_id)
        if account is None:
            return exchange, requester, None, "unknown_account", touched
        if account_id == INSURANCE_ACCOUNT:  # owner 0: nobody can ask for it
            return exchange, requester, account, "insurance_account", touched
        if requester != account.owner:  # the contract does not know owners: anyone may queue
            return exchange, requester, account, "not_owner", touched
        return exchange, requester, account, None, touched

    def _plan_forced_withdraw(self, t: ForcedWithdraw) -> _Plan:
        amount = t.amount
        exchange, requester, account, noop, touched = self._forced_account(t)
        paid = 0
        slot = None
        writes: tuple[Leaf | WithdrawalLeaf, ...] = (exchange,)
        if noop is None and amount == 0:
            noop = "bad_amount"
        if noop is None:
            assert account is not None
            paid = min(amount, account.collateral)
            if paid == 0:
                noop = "nothing_to_withdraw"
            else:  # the nonce counts signed requests only: unchanged
                account = self._replace(account, collateral=account.collateral - paid)
                slot = exchange.withdrawal_count
                exchange, leaf = self._pay(exchange, account.account_id, requester, paid)
                writes = (exchange, account, leaf)
        result = AppliedForcedWithdraw(
            t.forced_index,
            t.account_id,
            requester,
            amount,
            paid,
            None if account is None else account.collateral,
            noop,
            tuple(touched),
            slot,
        )
        return result, writes, _NO_DELETES

    def _plan_forced_exit(self, t: ForcedExit) -> _Plan:
        market_id = t.market_id
        exchange, requester, _account, noop, touched = self._forced_account(t)
        market = self._markets.get(market_id)
        pos = None
        if noop is None:
            if market_id < MAX_MARKETS:
                touched.append(market_index(market_id))
            if market is None:
                noop = "unknown_market"
            else:
                touched.append(position_index(t.account_id, market_id))
                pos = self._positions.get((t.account_id, market_id))
                if pos is None:
                    noop = "no_position"
        if noop is not None:
            result = AppliedForcedExit(
                t.forced_index,
                t.account_id,
                market_id,
                requester,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                None,
                exchange.insurance_fund,
                0 if market is None else market.open_interest,
                noop,
                tuple(touched),
            )
            return result, (exchange,), _NO_DELETES
        assert market is not None and pos is not None
        try:
            pos, funding = risk.settle_funding(pos, market)
        except ValueError as exc:
            raise _overflow(exc) from exc
        equity = pos.quote + market.notional(pos.size, market.mark_price)
        paid = max(0, equity)
        writes: list[Leaf | WithdrawalLeaf] = []
        deletes = [(t.account_id, market_id)]
        insurance_funding = 0
        insurance_position = None
        if pos.size == 0:  # flat with margin in: nothing to take over, the quote is paid out
            ex = self._exchange
            fund = ex.insurance_fund + pos.quote - paid  # 0 (a flat quote is never negative)
            exchange = self._replace(exchange, insurance_fund=fund)
        else:
            # The insurance account takes the position over at the mark, as in BACKSTOP: size
            # and basis as-is, quote minus what the owner is paid (-notional at the mark when
            # equity >= 0; the whole bad debt otherwise). No solvency check: the request cannot
            # be refused.
            taken = self._replace(pos, quote=pos.quote - paid)
            held = self._positions.get((INSURANCE_ACCOUNT, market_id))
            merged, insurance_funding, ex, _ = self._takeover(market, taken)
            exchange = self._replace(exchange, insurance_fund=ex.insurance_fund)
            open_interest = (
                market.open_interest
                + max(merged.size, 0)
                - max(pos.size, 0)
                - max(0 if held is None else held.size, 0)
            )
            touched.append(position_index(INSURANCE_ACCOUNT, market_id))
            if merged.size == 0:
                deletes.append((INSURANCE_ACCOUNT, market_id))
            else:
                writes.append(merged)
                insurance_position = merged
            if open_interest != market.open_interest:
                market = self._replace(market, open_interest=open_interest)
                writes.append(market)
        slot = None
        if paid > 0:
            slot = exchange.withdrawal_count
            exchange, leaf = self._pay(exchange, t.account_id, requester, paid)
            writes.append(leaf)
        writes.append(exchange)
        result = AppliedForcedExit(
            t.forced_index,
            t.account_id,
            market_id,
            requester,
            paid,
            pos.size,
            pos.quote,
            equity,
            market.mark_price,
            funding,
            insurance_funding,
            insurance_position,
            exchange.insurance_fund,
            market.open_interest,
            None,
            tuple(touched),
            slot,
        )
        return result, tuple(writes), tuple(deletes)

    # -- records that only pay out: refunds of deposits that cannot be credited, fee collection --

    def _pay(
        self, exchange: Exchange, account_id: int, recipient: str, amount: int
    ) -> tuple[Exchange, WithdrawalLeaf]:
        """``exchange`` (this plan's exchange leaf so far) with ``(account_id, recipient, amount)``
        appended to the global withdrawals tree: the root after the append, count + 1,
        total + amount; and the leaf, for the plan's writes. Rejects ``overflow`` when the tree is
        full (2^32 leaves) or the total would leave uint128."""
        leaf = WithdrawalLeaf(account_id, recipient, amount)
        count = exchange.withdrawal_count
        if count >= WITHDRAWALS_CAPACITY or exchange.withdrawal_total + amount > UINT128_MAX:
            raise _reject(
                "overflow",
                f"the withdrawals tree ({count} leaves, total {exchange.withdrawal_total}) "
                f"cannot take {amount} more",
            )
        root = self._wtree.root_after(leaf.leaf_hash)
        return (
            _rebuild(
                exchange,
                withdrawals_root=root,
                withdrawal_count=count + 1,
                withdrawal_total=exchange.withdrawal_total + amount,
            ),
            leaf,
        )

    def _plan_deposit_rejected(self, t: DepositRejected) -> _Plan:
        # field widths: checked in _plan against the record table (protocol.records)
        deposit_index, account_id, amount = t.deposit_index, t.account_id, t.amount
        owner, existing = self._check_deposit_entry(t)
        ex = self._exchange
        touched = [EXCHANGE_INDEX]
        if existing is not None:
            touched.append(account_index(account_id))
            collateral = self._accounts[account_id].collateral
            if collateral + amount <= UINT128_MAX:
                raise _reject(
                    "deposit_creditable",
                    f"account {account_id} can take {amount} more collateral: a DEPOSIT",
                )
            reason = "collateral_overflow"
        else:
            if account_id < INSURANCE_ACCOUNT:
                raise _reject(
                    "deposit_creditable", f"account id {account_id} is free: a DEPOSIT"
                )
            reason = "accounts_full"
        exchange = self._replace(ex, deposit_cursor=ex.deposit_cursor + 1)
        exchange, leaf = self._pay(exchange, SYSTEM_WITHDRAWAL_ACCOUNT, owner, amount)
        result = AppliedDepositRejected(
            deposit_index,
            account_id,
            owner,
            amount,
            reason,
            ex.withdrawal_count,
            tuple(touched),
        )
        return result, (exchange, leaf), _NO_DELETES

    def _plan_fee_collect(self, t: FeeCollect) -> _Plan:
        amount = t.amount  # width checked in _plan (protocol.records)
        ex = self._exchange
        if amount == 0:
            raise _reject("bad_amount", "fee collection amount must be > 0")
        if amount > ex.fee_balance:
            raise _reject(
                "insufficient_fees", f"collecting {amount} of a fee balance of {ex.fee_balance}"
            )
        to_insurance = amount * INSURANCE_FEE_SHARE_PPM // PPM
        paid = amount - to_insurance
        exchange = self._replace(
            ex,
            fee_balance=ex.fee_balance - amount,
            insurance_fund=ex.insurance_fund + to_insurance,
        )
        writes: tuple[Leaf | WithdrawalLeaf, ...] = (exchange,)
        slot = None
        if paid > 0:
            slot = exchange.withdrawal_count
            exchange, leaf = self._pay(
                exchange, SYSTEM_WITHDRAWAL_ACCOUNT, self.fee_recipient, paid
            )
            writes = (exchange, leaf)
        result = AppliedFeeCollect(
            amount,
            to_insurance,
            paid,
            self.fee_recipient,
            exchange.fee_balance,
            exchange.insurance_fund,
            slot,
            (EXCHANGE_INDEX,),
        )
        return result, writes, _NO_DELETES

    # -- commit: the only code that mutates the state ----------------------------------------------

    def _put(self, leaf: Leaf) -> None:  # from_leaves: state leaves only
        if isinstance(leaf, Position):
            self._put_position(leaf)
        elif isinstance(leaf, Order):
            self._put_order(leaf)
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
        self._tree.set(index, keccak256(LEAF_SALT + data))  # hash_leaf, without the call

    def _put_account(self, account: Account) -> None:
        self._accounts[account.account_id] = account
        self._owners[account.owner.lower()] = account.account_id
        self._write(account_index(account.account_id), encode_account(account))

    # The hot writes compute the index inline: a model object's ids are already bounded by its
    # __post_init__ (account < 2^24, market < 64, slot < 64), which is what *_index checks.

    def _put_position(self, pos: Position) -> None:
        account_id, market_id = pos.account_id, pos.market_id
        self._positions[(account_id, market_id)] = pos
        index = _POSITION_BASE | account_id << ACCOUNT_SHIFT | market_id
        data = encode_position(pos)
        self._leaves[index] = data
        self._tree.set(index, keccak256(LEAF_SALT + data))

    def _put_order(self, order: Order) -> None:
        account_id, slot = order.account_id, order.slot
        self._orders[(account_id, slot)] = order
        index = _ORDER_BASE | account_id << ACCOUNT_SHIFT | slot
        data = encode_order(order)
        self._leaves[index] = data
        self._tree.set(index, keccak256(LEAF_SALT + data))

    def _put_market(self, market: Market) -> None:
        self._markets[market.market_id] = market
        self._write(market_index(market.market_id), encode_market(market))

    def _put_exchange(self, exchange: Exchange) -> None:
        self._exchange = exchange
        self._write(EXCHANGE_INDEX, encode_exchange(exchange))

    def _put_withdrawal(self, leaf: WithdrawalLeaf) -> None:
        """Appends ``leaf`` to the withdrawals tree (the plan's exchange leaf holds the root)."""
        self._withdrawals.append(leaf)
        self._wtree.append(leaf.leaf_hash)

    def _delete_position(self, key: tuple[int, int]) -> None:
        del self._positions[key]
        index = position_index(*key)
        del self._leaves[index]
        self._tree.set(index, EMPTY)


_PUTTERS: Final[dict[type, Callable[[Ledger, Any], None]]] = {
    Position: Ledger._put_position,
    Order: Ledger._put_order,
    Account: Ledger._put_account,
    Exchange: Ledger._put_exchange,
    Market: Ledger._put_market,
    WithdrawalLeaf: Ledger._put_withdrawal,
}
_POSITION_BASE: Final = position_index(0, 0)
_ORDER_BASE: Final = order_index(0, 0)

_PLANNERS: Final[dict[type, Callable[[Ledger, Any], _Plan]]] = {
    Deposit: Ledger._plan_deposit,
    Withdraw: Ledger._plan_withdraw,
    MarginTransfer: Ledger._plan_margin_transfer,
    Fill: Ledger._plan_fill,
    PlaceOrder: Ledger._plan_order,
    CancelOrder: Ledger._plan_cancel,
    OrderDone: Ledger._plan_order_done,
    PriceUpdate: Ledger._plan_price,
    Funding: Ledger._plan_funding,
    Liquidate: Ledger._plan_liquidate,
    Backstop: Ledger._plan_backstop,
    Deleverage: Ledger._plan_deleverage,
    ForcedWithdraw: Ledger._plan_forced_withdraw,
    ForcedExit: Ledger._plan_forced_exit,
    DepositRejected: Ledger._plan_deposit_rejected,
    FeeCollect: Ledger._plan_fee_collect,
}


def rebuild_root(leaves: Iterable[Leaf]) -> bytes:
    """The root of a tree built from scratch from model objects (checks the incremental one)."""
    tree = SparseMerkleTree(STATE_TREE_DEPTH)
    for leaf in leaves:
        tree.set(index_of(leaf), hash_leaf(encode_leaf(leaf)))
    return tree.root
