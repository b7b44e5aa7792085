"""The central limit order book of one market: a pure, deterministic price-time priority matcher.

No I/O, no clock, no randomness: the caller passes ``now`` (unix seconds) and, per order, the
account's current position (for reduce-only). Orders arrive already authenticated
(``IncomingOrder``); fills are proposed to the caller's ``accept`` hook one at a time so the
exchange can run each through its ledger before the book applies it.

Rules
- Validation, in this order (``OrderRejected.reason``): ``off_tick`` (price not a positive multiple
  of ``price_tick``), ``bad_size`` (size <= 0 or not a multiple of ``size_step``),
  ``below_min_size``, ``expired`` (``expiry != 0 and expiry <= now``), ``duplicate_order``,
  ``bad_key`` (``key[0] != account_id``), ``reduce_only_would_increase`` (position flat or on the
  order's side), ``post_only_would_cross`` (price reaches the best opposite price),
  ``fok_unfillable`` (not enough opposite size within the limit, not counting makers that
  self-trade prevention or expiry would remove).
- Reduce-only orders are clipped to ``|position|`` before matching, so they never flip a position.
  The book does not know makers' positions: a resting reduce-only order must be re-checked by
  ``accept`` when it fills.
- Matching walks the opposite side best price first, FIFO within a price; fills are at the maker's
  price. A maker of the taker's own account is cancelled (self-trade prevention, as dYdX v4 and
  Hyperliquid: remove the resting order and continue); an expired maker is removed; a maker whose
  match ``accept`` refuses is removed. All three are reported in ``PlaceResult.removed``.
- After matching, a GTC remainder rests at its limit price; an IOC/FOK remainder is discarded.
  A FOK is checked before matching; if ``accept`` then refuses makers, the FOK ends partially
  filled (accepted fills cannot be undone by the book) and its remainder is discarded.
- An order key, once accepted, is remembered: a replayed or re-sent key is a ``duplicate_order``
  even after the order filled or was cancelled. Keys of orders with an expiry are forgotten by
  ``expire(now)`` once ``expiry <= now`` (a replay would be rejected as expired anyway); keys
  without an expiry are remembered for the life of the book. ``now`` must never go backwards.
- ``accept`` must not modify the book. If it raises, the exception propagates: fills accepted
  before it stay applied, the taker does not rest, its key counts as used.

Invariants (``check_invariants`` verifies them; the tests run it after every operation)
1. After ``place`` returns, the book is not crossed: ``best_bid < best_ask``.
2. No order fills beyond its size or twice: every fill is ``<=`` the maker's and the taker's
   remaining size, a resting order's ``0 < remaining <= size``, and a key is accepted once.
3. Conservation: for an accepted order ``sum(fill sizes) + remaining == accepted size``.
4. Price-time priority: fills go best price first and, within a price, in arrival order.
5. A rejected order changes nothing: the book state is identical before and after.
6. Every maker taken off the book while matching is reported in ``PlaceResult.removed``.

Data structures (chosen for CPython speed; PyLOB's layout with a sorted key list):
- per side a dict ``level key -> _Level`` and an ascending list of level keys whose *last* element
  is the best (bids keyed by ``price``, asks by ``-price``), so crossing is ``keys[-1] >= bound``,
  consuming the best level is ``list.pop()``, and new levels near the top insert near the end;
- a level is a deque of orders in arrival order plus its live total; a cancel is O(1): the order
  is marked dead and skipped (and dropped) later, and a level with mostly dead entries is
  compacted;
- ``key -> RestingOrder`` for O(1) cancel and lookup; a set of used keys; a heap of expiries.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from collections.abc import Callable, Iterator
from heapq import heappop, heappush
from operator import attrgetter
from typing import NoReturn

from isoperp.errors import ConfigError, InvariantViolation
from isoperp.matching.types import (
    BAD_KEY,
    BAD_SIZE,
    BELOW_MIN_SIZE,
    DUPLICATE_ORDER,
    EXPIRED,
    FOK_UNFILLABLE,
    OFF_TICK,
    POST_ONLY_WOULD_CROSS,
    REDUCE_ONLY_WOULD_INCREASE,
    REMOVED_BY_LEDGER,
    REMOVED_EXPIRED,
    REMOVED_SELF_TRADE,
    IncomingOrder,
    Match,
    OrderKey,
    OrderRejected,
    PlaceResult,
    RestingOrder,
    new_match,
    new_place_result,
)

Accept = Callable[[Match], bool]

_GTC = 0
_FOK = 2
_NO_FILLS: tuple[Match, ...] = ()
_NO_REMOVALS: tuple[tuple[OrderKey, str], ...] = ()
# A level is compacted when it holds more than this many dead entries and they are the majority.
_COMPACT_MIN_DEAD = 16
_is_live = attrgetter("live")


class _Level:
    """Orders at one price in arrival order. ``total`` sums the live orders' remaining sizes;
    ``dead`` counts cancelled orders still in ``orders`` (skipped when met)."""

    __slots__ = ("dead", "orders", "price", "total")

    def __init__(self, price: int) -> None:
        self.price = price
        self.orders: deque[RestingOrder] = deque()
        self.total = 0
        self.dead = 0


class OrderBook:
    """Limit order book of one market. See the module docstring for the rules and invariants."""

    __slots__ = (
        "_ask_keys",
        "_asks",
        "_bid_keys",
        "_bids",
        "_expiries",
        "_orders",
        "_seen",
        "_seq",
        "market_id",
        "min_size",
        "price_tick",
        "size_step",
    )

    def __init__(self, market_id: int, *, price_tick: int, size_step: int, min_size: int) -> None:
        for name, value in (("price_tick", price_tick), ("size_step", size_step)):
            if value < 1:
                raise ConfigError(f"market {market_id}: {name} must be >= 1, got {value}")
        if min_size < 1:
            raise ConfigError(f"market {market_id}: min_size must be >= 1, got {min_size}")
        self.market_id = market_id
        self.price_tick = price_tick
        self.size_step = size_step
        self.min_size = min_size
        self._bids: dict[int, _Level] = {}
        self._asks: dict[int, _Level] = {}
        self._bid_keys: list[int] = []  # prices, ascending: best bid last
        self._ask_keys: list[int] = []  # negated prices, ascending: best ask last
        self._orders: dict[OrderKey, RestingOrder] = {}
        self._seen: set[OrderKey] = set()
        self._expiries: list[tuple[int, OrderKey]] = []
        self._seq = 0

    # ------------------------------------------------------------------ placing

    def place(
        self,
        order: IncomingOrder,
        *,
        now: int,
        position: int = 0,
        accept: Accept | None = None,
    ) -> PlaceResult:
        """Validate, match and (GTC) rest ``order``; raise ``OrderRejected`` leaving the book
        unchanged. ``position`` is the account's signed position (for reduce-only); ``accept``
        sees each prospective match before it is applied and may refuse it."""
        price = order.price
        size = order.size
        # One test for the whole grid (min_size >= 1 also catches size <= 0); _reject_grid names
        # the first rule broken.
        if price <= 0 or size < self.min_size or price % self.price_tick or size % self.size_step:
            self._reject_grid(price, size)
        expiry = order.expiry
        if expiry and expiry <= now:
            raise OrderRejected(EXPIRED, f"order expired at {expiry} (now {now})")
        key = order.key
        if key in self._seen or key[0] != order.account_id:
            self._reject_key(order)
        is_buy = order.is_buy
        if order.reduce_only:
            size = _clip_reduce_only(is_buy, size, position)
        # Crossing test against the best opposite level key (bids: price, asks: -price).
        if is_buy:
            opposite = self._ask_keys
            bound = -price
        else:
            opposite = self._bid_keys
            bound = price
        tif = order.tif
        if opposite and opposite[-1] >= bound:
            fills, removed, remaining = self._take(order, size, bound, now, accept)
        else:
            if tif == _FOK:
                raise OrderRejected(FOK_UNFILLABLE, f"cannot fill {size} lots at {price} now")
            self._seen.add(key)
            if expiry:
                heappush(self._expiries, (expiry, key))
            fills = _NO_FILLS
            removed = _NO_REMOVALS
            remaining = size
        if remaining and tif == _GTC:
            self._rest(order, size, remaining)
            return new_place_result(fills, True, remaining, removed, size)
        return new_place_result(fills, False, remaining, removed, size)

    def _reject_grid(self, price: int, size: int) -> NoReturn:
        if price <= 0 or price % self.price_tick:
            raise OrderRejected(OFF_TICK, f"price {price} is not a positive multiple of the tick")
        if size <= 0 or size % self.size_step:
            raise OrderRejected(BAD_SIZE, f"size {size} is not a positive multiple of the step")
        raise OrderRejected(BELOW_MIN_SIZE, f"size {size} is below {self.min_size}")

    def _reject_key(self, order: IncomingOrder) -> NoReturn:
        key = order.key
        if key in self._seen:
            raise OrderRejected(DUPLICATE_ORDER, f"order {key} was already placed")
        raise OrderRejected(BAD_KEY, f"order key {key} is not of account {order.account_id}")

    def _accept_key(self, key: OrderKey, expiry: int) -> None:
        self._seen.add(key)
        if expiry:
            heappush(self._expiries, (expiry, key))

    def _rest(self, order: IncomingOrder, size: int, remaining: int) -> None:
        self._seq = seq = self._seq + 1
        price = order.price
        is_buy = order.is_buy
        resting = RestingOrder(
            order.key,
            order.account_id,
            is_buy,
            price,
            size,
            remaining,
            order.expiry,
            seq,
            order.post_only,
            order.reduce_only,
        )
        self._orders[order.key] = resting
        if is_buy:
            levels = self._bids
            level_key = price
        else:
            levels = self._asks
            level_key = -price
        level = levels.get(level_key)
        if level is None:
            levels[level_key] = level = _Level(price)
            insort(self._bid_keys if is_buy else self._ask_keys, level_key)
        level.orders.append(resting)
        level.total += remaining

    def _take(
        self,
        order: IncomingOrder,
        size: int,
        bound: int,
        now: int,
        accept: Accept | None,
    ) -> tuple[tuple[Match, ...], tuple[tuple[OrderKey, str], ...], int]:
        """Check a crossing order (post-only, FOK), then match ``size`` of it against the
        opposite side while the best opposite level key is ``>= bound``."""
        if order.post_only:
            raise OrderRejected(POST_ONLY_WOULD_CROSS, f"post-only at {order.price} would cross")
        if order.tif == _FOK and not self._can_fill(order, bound, size, now):
            raise OrderRejected(FOK_UNFILLABLE, f"cannot fill {size} lots at {order.price} now")
        self._accept_key(order.key, order.expiry)
        return self._match(order, size, bound, now, accept)

    def _match(
        self,
        order: IncomingOrder,
        size: int,
        bound: int,
        now: int,
        accept: Accept | None,
    ) -> tuple[tuple[Match, ...], tuple[tuple[OrderKey, str], ...], int]:
        """The matching loop: fills, removed makers and the taker's unfilled size."""
        taker = order.key
        account = order.account_id
        is_buy = order.is_buy
        if is_buy:
            levels = self._asks
            keys = self._ask_keys
        else:
            levels = self._bids
            keys = self._bid_keys
        orders = self._orders
        fills: list[Match] = []
        removed: list[tuple[OrderKey, str]] = []
        remaining = size
        while keys and keys[-1] >= bound:
            level_key = keys[-1]
            level = levels[level_key]
            queue = level.orders
            while queue:
                maker = queue[0]
                if not maker.live:
                    queue.popleft()
                    level.dead -= 1
                    continue
                if maker.account_id == account:
                    reason = REMOVED_SELF_TRADE
                elif maker.expiry and maker.expiry <= now:
                    reason = REMOVED_EXPIRED
                else:
                    available = maker.remaining
                    qty = remaining if remaining < available else available
                    match = new_match(
                        maker.key, maker.account_id, taker, account, is_buy, maker.price, qty
                    )
                    if accept is None or accept(match):
                        fills.append(match)
                        remaining -= qty
                        level.total -= qty
                        if qty == available:
                            queue.popleft()
                            del orders[maker.key]
                            maker.remaining = 0
                            maker.live = False
                        else:
                            maker.remaining = available - qty
                        if remaining:
                            continue
                        break
                    reason = REMOVED_BY_LEDGER
                # Take the maker off the book (it is at the front of its level).
                queue.popleft()
                del orders[maker.key]
                maker.live = False
                level.total -= maker.remaining
                removed.append((maker.key, reason))
            if not level.total:
                del levels[level_key]
                keys.pop()
            if not remaining:
                break
        return (
            tuple(fills) if fills else _NO_FILLS,
            tuple(removed) if removed else _NO_REMOVALS,
            remaining,
        )

    def _can_fill(self, order: IncomingOrder, bound: int, size: int, now: int) -> bool:
        """True if makers within ``bound`` that matching would not remove hold ``size`` lots."""
        is_buy = order.is_buy
        account = order.account_id
        levels, keys = (self._asks, self._ask_keys) if is_buy else (self._bids, self._bid_keys)
        available = 0
        for i in range(len(keys) - 1, -1, -1):
            level_key = keys[i]
            if level_key < bound:
                break
            for maker in levels[level_key].orders:
                if (
                    maker.live
                    and maker.account_id != account
                    and not (maker.expiry and maker.expiry <= now)
                ):
                    available += maker.remaining
                    if available >= size:
                        return True
        return False

    # ------------------------------------------------------------------ removing

    def cancel(self, key: OrderKey) -> RestingOrder | None:
        """Take a resting order off the book; returns it (``live`` False) or None if not resting.
        The key stays used: the same key cannot be placed again."""
        resting = self._orders.pop(key, None)
        if resting is None:
            return None
        resting.live = False
        if resting.is_buy:
            levels = self._bids
            keys = self._bid_keys
            level_key = resting.price
        else:
            levels = self._asks
            keys = self._ask_keys
            level_key = -resting.price
        level = levels[level_key]
        level.total -= resting.remaining
        if not level.total:
            del levels[level_key]
            del keys[bisect_left(keys, level_key)]
            return resting
        level.dead = dead = level.dead + 1
        if dead > _COMPACT_MIN_DEAD and dead + dead > len(level.orders):
            level.orders = deque(filter(_is_live, level.orders))
            level.dead = 0
        return resting

    def expire(self, now: int) -> list[OrderKey]:
        """Remove resting orders with ``expiry <= now`` (in expiry order) and forget the keys of
        all orders that expired. Returns the keys removed from the book."""
        heap = self._expiries
        seen = self._seen
        removed: list[OrderKey] = []
        while heap and heap[0][0] <= now:
            key = heappop(heap)[1]
            seen.discard(key)
            if self.cancel(key) is not None:
                removed.append(key)
        return removed

    # ------------------------------------------------------------------ reading

    def __len__(self) -> int:
        return len(self._orders)

    def __contains__(self, key: object) -> bool:
        return key in self._orders

    def get(self, key: OrderKey) -> RestingOrder | None:
        """A copy of the resting order ``key``, or None."""
        resting = self._orders.get(key)
        return None if resting is None else resting.snapshot()

    def is_used(self, key: OrderKey) -> bool:
        """True if ``key`` was accepted and is still remembered (placing it would be rejected)."""
        return key in self._seen

    def orders_of(self, account_id: int) -> list[RestingOrder]:
        """Copies of the account's resting orders in arrival order (a scan of the book)."""
        return [o.snapshot() for o in self._orders.values() if o.account_id == account_id]

    def orders(self, is_buy: bool) -> list[RestingOrder]:
        """Copies of one side's resting orders in priority order (best price, then arrival)."""
        return [o.snapshot() for o in self._iter_side(is_buy)]

    def _iter_side(self, is_buy: bool) -> Iterator[RestingOrder]:
        levels, keys = (self._bids, self._bid_keys) if is_buy else (self._asks, self._ask_keys)
        for level_key in reversed(keys):
            for resting in levels[level_key].orders:
                if resting.live:
                    yield resting

    def best_bid(self) -> int | None:
        keys = self._bid_keys
        return keys[-1] if keys else None

    def best_ask(self) -> int | None:
        keys = self._ask_keys
        return -keys[-1] if keys else None

    def spread(self) -> int | None:
        """best ask - best bid in ticks, or None if a side is empty."""
        bids = self._bid_keys
        asks = self._ask_keys
        if not bids or not asks:
            return None
        return -asks[-1] - bids[-1]

    def mid(self) -> int | None:
        """(best bid + best ask) // 2 in ticks (floored), or None if a side is empty."""
        bids = self._bid_keys
        asks = self._ask_keys
        if not bids or not asks:
            return None
        return (bids[-1] - asks[-1]) // 2

    def depth(self, levels: int = 10) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Aggregated ``(price, size)`` of the best ``levels`` levels: bids descending, asks
        ascending."""
        if levels <= 0:
            return [], []
        bids = self._bids
        asks = self._asks
        return (
            [(k, bids[k].total) for k in reversed(self._bid_keys[-levels:])],
            [(-k, asks[k].total) for k in reversed(self._ask_keys[-levels:])],
        )

    def impact_price(self, is_buy: bool, notional_lots: int) -> int | None:
        """Average price in ticks of a market order of ``notional_lots`` lots (a buy walks the
        asks), rounded against the taker (buys up, sells down); None if the side is too thin.
        This is dYdX's impact ask/bid for the funding premium. Call ``expire(now)`` first so
        expired orders do not count."""
        if notional_lots <= 0:
            raise ValueError(f"impact size must be positive, got {notional_lots}")
        levels, keys = (self._asks, self._ask_keys) if is_buy else (self._bids, self._bid_keys)
        left = notional_lots
        cost = 0
        for level_key in reversed(keys):
            level = levels[level_key]
            take = level.total if level.total < left else left
            cost += take * level.price
            left -= take
            if not left:
                if is_buy:
                    return -(-cost // notional_lots)
                return cost // notional_lots
        return None

    # ------------------------------------------------------------------ checking

    def check_invariants(self) -> None:
        """Raise ``InvariantViolation`` if the book's structure is inconsistent (for tests and
        debugging; O(n))."""
        live: dict[OrderKey, RestingOrder] = {}
        for is_buy, levels, keys in (
            (True, self._bids, self._bid_keys),
            (False, self._asks, self._ask_keys),
        ):
            _check(keys == sorted(set(keys)), "level keys not strictly ascending")
            _check(set(keys) == set(levels), "level keys and levels disagree")
            for level_key in keys:
                level = levels[level_key]
                _check(level_key == (level.price if is_buy else -level.price), "level key")
                alive = [o for o in level.orders if o.live]
                _check(len(level.orders) - len(alive) == level.dead, "dead count")
                _check(bool(alive), f"empty level at {level.price}")
                _check(sum(o.remaining for o in alive) == level.total, "level total")
                seqs = [o.seq for o in alive]
                _check(seqs == sorted(seqs), f"time priority broken at {level.price}")
                for o in alive:
                    _check(o.is_buy == is_buy and o.price == level.price, f"misplaced {o.key}")
                    _check(0 < o.remaining <= o.size, f"bad remaining of {o.key}")
                    _check(o.key not in live, f"order {o.key} twice on the book")
                    live[o.key] = o
        _check(live.keys() == self._orders.keys(), "order index and levels disagree")
        _check(all(live[k] is o for k, o in self._orders.items()), "order index identity")
        _check(self._orders.keys() <= self._seen, "resting key not marked used")
        bid, ask = self.best_bid(), self.best_ask()
        _check(bid is None or ask is None or bid < ask, f"crossed book: {bid} >= {ask}")


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise InvariantViolation(f"order book: {what}")


def _clip_reduce_only(is_buy: bool, size: int, position: int) -> int:
    """The size a reduce-only order may have against ``position``, or reject it."""
    if position == 0 or (position > 0) == is_buy:
        raise OrderRejected(
            REDUCE_ONLY_WOULD_INCREASE,
            f"reduce-only {'buy' if is_buy else 'sell'} against position {position}",
        )
    cap = -position if position < 0 else position
    return size if size <= cap else cap
