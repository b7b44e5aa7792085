"""Order book value types: incoming orders, matches, place results, resting orders, rejections.

Units follow docs/PROTOCOL.md: prices are integer ticks, sizes integer lots, times unix seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from enum import IntEnum
from typing import Any, TypeVar

from isoperp.errors import TransitionRejected

OrderKey = tuple[int, int]
"""``(account_id, nonce)``: identifies an order for the book's whole life (see ``OrderBook``)."""

# Rejection reason codes (``OrderRejected.reason``), in the order ``OrderBook.place`` checks them.
OFF_TICK = "off_tick"
BAD_SIZE = "bad_size"
BELOW_MIN_SIZE = "below_min_size"
EXPIRED = "expired"
DUPLICATE_ORDER = "duplicate_order"
BAD_KEY = "bad_key"
REDUCE_ONLY_WOULD_INCREASE = "reduce_only_would_increase"
POST_ONLY_WOULD_CROSS = "post_only_would_cross"
FOK_UNFILLABLE = "fok_unfillable"

# Why a resting maker was taken off the book during matching (``PlaceResult.removed``).
REMOVED_SELF_TRADE = "self_trade"
REMOVED_EXPIRED = "expired"
REMOVED_BY_LEDGER = "rejected_by_ledger"


_T = TypeVar("_T")


class OrderRejected(TransitionRejected):
    """The book refused an order; nothing changed. ``reason`` is one of the codes above."""


class TimeInForce(IntEnum):
    GTC = 0
    """Good till cancelled (or till ``expiry``): the unfilled remainder rests."""
    IOC = 1
    """Immediate or cancel: fill what crosses now, discard the rest (a market order is IOC)."""
    FOK = 2
    """Fill or kill: fill the whole size now or reject the order."""


@dataclass(frozen=True, slots=True)
class IncomingOrder:
    """An order the exchange has already authenticated (signature, nonce, market)."""

    key: OrderKey
    account_id: int
    """Must equal ``key[0]``."""
    is_buy: bool
    price: int
    """Limit price in ticks; for a market order (IOC) the worst acceptable price."""
    size: int
    """Lots."""
    tif: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    """Reject instead of taking liquidity."""
    reduce_only: bool = False
    """Only reduce the current position: clipped to ``|position|``, never flips it."""
    expiry: int = 0
    """Unix seconds after which the order is void (``expiry <= now``); 0 = never."""


@dataclass(frozen=True, slots=True)
class Match:
    """One fill between a resting maker and the incoming taker, at the maker's price."""

    maker: OrderKey
    maker_account: int
    taker: OrderKey
    taker_account: int
    taker_is_buy: bool
    price: int
    size: int


@dataclass(frozen=True, slots=True)
class PlaceResult:
    """What ``OrderBook.place`` did with an accepted order."""

    fills: tuple[Match, ...]
    """In execution order (price-time priority)."""
    rested: bool
    """True if the remainder now rests on the book (GTC only)."""
    remaining: int
    """Unfilled size of the taker: the resting size if ``rested``, else the discarded size."""
    removed: tuple[tuple[OrderKey, str], ...]
    """Makers taken off the book while matching, with ``REMOVED_*`` reasons, in order."""
    size: int
    """The accepted size (after reduce-only clipping): ``sum(fill sizes) + remaining == size``."""

    @property
    def filled(self) -> int:
        return self.size - self.remaining


@dataclass(slots=True)
class RestingOrder:
    """An order on the book. The book mutates ``remaining`` and ``live`` of its own instances;
    ``OrderBook.get``/``orders_of``/``orders`` hand out copies, ``cancel`` the removed instance."""

    key: OrderKey
    account_id: int
    is_buy: bool
    price: int
    size: int
    """Accepted size (after reduce-only clipping)."""
    remaining: int
    expiry: int
    seq: int
    """Arrival sequence number in this book: time priority within a price level."""
    post_only: bool
    reduce_only: bool
    live: bool = True
    """False once the order left the book (filled, cancelled, expired, removed)."""

    def snapshot(self) -> RestingOrder:
        return RestingOrder(
            self.key,
            self.account_id,
            self.is_buy,
            self.price,
            self.size,
            self.remaining,
            self.expiry,
            self.seq,
            self.post_only,
            self.reduce_only,
            self.live,
        )


def fast_constructor(cls: type[_T]) -> Callable[..., _T]:
    """A positional constructor for a frozen slots dataclass that stores the fields through their
    slot descriptors instead of the generated ``__init__``'s ``object.__setattr__`` calls: the same
    object (equal, hashable, frozen), built about twice as fast. For the matcher's hot path only;
    it skips ``__post_init__`` (none of these classes has one)."""
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    for name in names:
        namespace[f"_set_{name}"] = cls.__dict__[name].__set__
    body = "".join(f"    _set_{name}(obj, {name})\n" for name in names)
    source = f"def make({', '.join(names)}):\n    obj = _new(_cls)\n{body}    return obj\n"
    exec(source, namespace)
    make: Callable[..., _T] = namespace["make"]
    make.__qualname__ = make.__name__ = f"new_{cls.__name__}"
    return make


new_match = fast_constructor(Match)
new_place_result = fast_constructor(PlaceResult)
