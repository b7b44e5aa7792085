"""Random places, cancels, clock moves and expiries against a naive list-based reference book.

After every step: the same results (fills, removals, rests, reasons) as the reference, the same
resting orders in the same priority order, ``check_invariants`` (never crossed, totals, FIFO),
no order filled beyond its accepted size, positions summing to zero, every maker that left the
book during a place either fully filled or reported in ``removed``, and a rejected order leaving
the book byte-for-byte unchanged.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from isoperp.matching import (
    IncomingOrder,
    Match,
    OrderBook,
    OrderKey,
    OrderRejected,
    PlaceResult,
    TimeInForce,
)

TICK, STEP, MIN_SIZE = 2, 2, 4
ACCOUNTS = 4
START = 100

Accept = Callable[[Match], bool] | None


@dataclass
class Ref:
    key: OrderKey
    account: int
    is_buy: bool
    price: int
    size: int
    remaining: int
    expiry: int
    seq: int


class NaiveBook:
    """The book's rules written the obvious way: a flat list, sorted on every match."""

    def __init__(self) -> None:
        self.resting: list[Ref] = []
        self.used: dict[OrderKey, int] = {}  # key -> expiry
        self.seq = 0

    def validate(self, o: IncomingOrder, now: int) -> None:
        if o.price <= 0 or o.price % TICK:
            raise OrderRejected("off_tick", "")
        if o.size <= 0 or o.size % STEP:
            raise OrderRejected("bad_size", "")
        if o.size < MIN_SIZE:
            raise OrderRejected("below_min_size", "")
        if o.expiry and o.expiry <= now:
            raise OrderRejected("expired", "")
        if o.key in self.used:
            raise OrderRejected("duplicate_order", "")
        if o.key[0] != o.account_id:
            raise OrderRejected("bad_key", "")

    def place(self, o: IncomingOrder, now: int, position: int, accept: Accept) -> PlaceResult:
        self.validate(o, now)
        size = o.size
        if o.reduce_only:
            if position == 0 or (position > 0) == o.is_buy:
                raise OrderRejected("reduce_only_would_increase", "")
            size = min(size, abs(position))

        def crosses(r: Ref) -> bool:
            return r.is_buy != o.is_buy and (r.price <= o.price if o.is_buy else r.price >= o.price)

        def expired(r: Ref) -> bool:
            return bool(r.expiry) and r.expiry <= now

        makers = sorted(
            (r for r in self.resting if crosses(r)),
            key=lambda r: (r.price if o.is_buy else -r.price, r.seq),
        )
        if makers and o.post_only:
            raise OrderRejected("post_only_would_cross", "")
        if o.tif == TimeInForce.FOK:
            usable = [r for r in makers if r.account != o.account_id and not expired(r)]
            if sum(r.remaining for r in usable) < size:
                raise OrderRejected("fok_unfillable", "")
        self.used[o.key] = o.expiry
        fills, removed, remaining = self.match(o, makers, size, now, accept)
        rested = bool(remaining) and o.tif == TimeInForce.GTC
        if rested:
            self.seq += 1
            self.resting.append(
                Ref(o.key, o.account_id, o.is_buy, o.price, size, remaining, o.expiry, self.seq)
            )
        return PlaceResult(tuple(fills), rested, remaining, tuple(removed), size)

    def match(
        self, o: IncomingOrder, makers: list[Ref], size: int, now: int, accept: Accept
    ) -> tuple[list[Match], list[tuple[OrderKey, str]], int]:
        fills: list[Match] = []
        removed: list[tuple[OrderKey, str]] = []
        remaining = size
        for r in makers:
            if not remaining:
                break
            if r.account == o.account_id or (r.expiry and r.expiry <= now):
                reason = "self_trade" if r.account == o.account_id else "expired"
            else:
                qty = min(remaining, r.remaining)
                m = Match(r.key, r.account, o.key, o.account_id, o.is_buy, r.price, qty)
                if accept is None or accept(m):
                    fills.append(m)
                    remaining -= qty
                    r.remaining -= qty
                    if not r.remaining:
                        self.resting.remove(r)
                    continue
                reason = "rejected_by_ledger"
            self.resting.remove(r)
            removed.append((r.key, reason))
        return fills, removed, remaining

    def cancel(self, key: OrderKey) -> Ref | None:
        for r in self.resting:
            if r.key == key:
                self.resting.remove(r)
                return r
        return None

    def expire(self, now: int) -> list[OrderKey]:
        due = sorted((r.expiry, r.key) for r in self.resting if r.expiry and r.expiry <= now)
        for _, key in due:
            self.cancel(key)
        for key, expiry in list(self.used.items()):
            if expiry and expiry <= now:
                del self.used[key]
        return [key for _, key in due]

    def side(self, is_buy: bool) -> list[tuple[OrderKey, int, int, int, int]]:
        rows = [r for r in self.resting if r.is_buy == is_buy]
        rows.sort(key=lambda r: (-r.price if is_buy else r.price, r.seq))
        return [(r.key, r.price, r.size, r.remaining, r.seq) for r in rows]


def book_side(book: OrderBook, is_buy: bool) -> list[tuple[OrderKey, int, int, int, int]]:
    return [(o.key, o.price, o.size, o.remaining, o.seq) for o in book.orders(is_buy)]


def raw_state(book: OrderBook) -> object:
    levels = [
        (k, lv.total, lv.dead, [(o.key, o.remaining, o.live) for o in lv.orders])
        for side in (book._bids, book._asks)
        for k, lv in side.items()
    ]
    return (
        levels,
        list(book._bid_keys),
        list(book._ask_keys),
        dict(book._orders),
        set(book._seen),
        list(book._expiries),
        book._seq,
    )


ACCEPTS: list[Accept] = [
    None,
    lambda m: True,
    lambda m: (m.maker[1] + m.size) % 3 != 0,
    lambda m: m.maker_account != 1,
]


def mostly(valid: st.SearchStrategy[int], odd: st.SearchStrategy[int]) -> st.SearchStrategy[int]:
    """``valid`` 15 times in 16, else ``odd`` (values the book must reject)."""
    return st.tuples(st.integers(0, 15), valid, odd).map(lambda t: t[1] if t[0] else t[2])


prices = mostly(st.integers(47, 53).map(lambda p: p * TICK), st.integers(-1, 112))
sizes = mostly(st.integers(2, 6).map(lambda s: s * STEP), st.integers(-1, 9))
tifs = st.sampled_from([TimeInForce.GTC, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK])
flag_names = st.sampled_from(["", "", "", "", "", "post_only", "reduce_only", "bad_key"])
expiry_offsets = st.sampled_from([0, 0, 0, 1, 2, 3, 5, -1])


class BookMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.book = OrderBook(3, price_tick=TICK, size_step=STEP, min_size=MIN_SIZE)
        self.ref = NaiveBook()
        self.now = START
        self.nonces = [0] * ACCOUNTS
        self.history: list[OrderKey] = []
        self.accepted: dict[OrderKey, int] = {}
        self.filled: dict[OrderKey, int] = defaultdict(int)
        self.position = [0] * ACCOUNTS

    @rule(
        account=st.integers(0, ACCOUNTS - 1),
        reuse=st.integers(0, 9),
        is_buy=st.booleans(),
        price=prices,
        size=sizes,
        tif=tifs,
        flags=flag_names,
        expiry_offset=expiry_offsets,
        accept_index=st.integers(0, len(ACCEPTS) - 1),
    )
    def place(
        self,
        account: int,
        reuse: int,
        is_buy: bool,
        price: int,
        size: int,
        tif: TimeInForce,
        flags: str,
        expiry_offset: int,
        accept_index: int,
    ) -> None:
        if reuse == 0 and self.history:
            key = self.history[(account * 7 + size) % len(self.history)]
        else:
            key = (account, self.nonces[account])
            self.nonces[account] += 1
        owner = (key[0] + 1) % ACCOUNTS if flags == "bad_key" else key[0]
        expiry = self.now + expiry_offset if expiry_offset else 0
        order = IncomingOrder(
            key,
            owner,
            is_buy,
            price,
            size,
            tif,
            post_only=flags == "post_only",
            reduce_only=flags == "reduce_only",
            expiry=expiry,
        )
        position = self.position[owner]
        accept = ACCEPTS[accept_index]
        before = raw_state(self.book)
        before_remaining = {o.key: o.remaining for s in (True, False) for o in self.book.orders(s)}
        try:
            expected = self.ref.place(order, self.now, position, accept)
        except OrderRejected as exc:
            expected_reason = exc.reason
            try:
                self.book.place(order, now=self.now, position=position, accept=accept)
            except OrderRejected as got:
                assert got.reason == expected_reason
            else:
                raise AssertionError(f"accepted, reference rejected with {expected_reason}")
            assert raw_state(self.book) == before
            return
        result = self.book.place(order, now=self.now, position=position, accept=accept)
        assert result == expected
        self.history.append(key)
        # A key is accepted again only after expire() forgot it, which also took the old order
        # off the book: count the new order from zero.
        self.accepted[key] = result.size
        self.filled[key] = 0
        for m in result.fills:
            assert m.size > 0
            self.filled[m.maker] += m.size
            self.filled[m.taker] += m.size
            buyer, seller = (
                (m.taker_account, m.maker_account)
                if m.taker_is_buy
                else (m.maker_account, m.taker_account)
            )
            self.position[buyer] += m.size
            self.position[seller] -= m.size
        # Every maker that left the book is fully filled here or reported as removed.
        after = {o.key for s in (True, False) for o in self.book.orders(s)}
        gone = set(before_remaining) - after
        maker_fills: dict[OrderKey, int] = defaultdict(int)
        for m in result.fills:
            maker_fills[m.maker] += m.size
        fully_filled = {k for k, q in maker_fills.items() if q == before_remaining[k]}
        assert gone == fully_filled | {k for k, _ in result.removed}
        assert not fully_filled & {k for k, _ in result.removed}

    @rule(pick=st.integers(0, 1_000), unknown=st.booleans())
    def cancel(self, pick: int, unknown: bool) -> None:
        if unknown or not self.history:
            key = (ACCOUNTS, pick)
        else:
            key = self.history[pick % len(self.history)]
        expected = self.ref.cancel(key)
        got = self.book.cancel(key)
        if expected is None:
            assert got is None
        else:
            assert got is not None and not got.live
            assert (got.key, got.remaining) == (expected.key, expected.remaining)
        assert key not in self.book

    @rule(dt=st.integers(0, 3))
    def advance(self, dt: int) -> None:
        self.now += dt

    @rule()
    def expire(self) -> None:
        assert self.book.expire(self.now) == self.ref.expire(self.now)

    @invariant()
    def same_book_as_reference(self) -> None:
        self.book.check_invariants()
        for is_buy in (True, False):
            assert book_side(self.book, is_buy) == self.ref.side(is_buy)
        assert len(self.book) == len(self.ref.resting)

    @invariant()
    def never_overfilled(self) -> None:
        for key, filled in self.filled.items():
            assert filled <= self.accepted[key]
        for is_buy in (True, False):
            for o in self.book.orders(is_buy):
                assert self.filled[o.key] + o.remaining == o.size == self.accepted[o.key]
        assert sum(self.position) == 0


BookMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestBookMachine = BookMachine.TestCase


def test_book_random_operations_match_reference() -> None:
    """Volume on top of the state machine: seeded random streams, every result compared."""
    for seed in range(4):
        rng = random.Random(seed)
        book = OrderBook(3, price_tick=TICK, size_step=STEP, min_size=MIN_SIZE)
        ref = NaiveBook()
        now = START
        keys: list[OrderKey] = []
        position = [0] * ACCOUNTS
        for n in range(3_000):
            roll = rng.random()
            if roll < 0.25 and keys:
                key = rng.choice(keys)
                got, expected = book.cancel(key), ref.cancel(key)
                assert (got is None) == (expected is None)
            elif roll < 0.29:
                now += rng.randrange(3)  # resting orders may expire before expire() runs
            elif roll < 0.30:
                assert book.expire(now) == ref.expire(now)
            else:
                account = rng.randrange(ACCOUNTS)
                key = (account, n)
                reduce_only = rng.random() < 0.1
                order = IncomingOrder(
                    key,
                    account,
                    rng.random() < 0.5,
                    rng.randrange(46, 55) * TICK,
                    rng.randrange(2, 9) * STEP,
                    rng.choice(list(TimeInForce)),
                    post_only=rng.random() < 0.05,
                    reduce_only=reduce_only,
                    expiry=now + rng.randrange(1, 6) if rng.random() < 0.3 else 0,
                )
                accept = ACCEPTS[rng.randrange(len(ACCEPTS))]
                try:
                    expected_result = ref.place(order, now, position[account], accept)
                except OrderRejected as exc:
                    try:
                        book.place(order, now=now, position=position[account], accept=accept)
                    except OrderRejected as got_exc:
                        assert got_exc.reason == exc.reason
                    else:
                        raise AssertionError(f"accepted, reference said {exc.reason}") from None
                    continue
                result = book.place(order, now=now, position=position[account], accept=accept)
                assert result == expected_result
                keys.append(key)
                for m in result.fills:
                    sign = 1 if m.taker_is_buy else -1
                    position[m.taker_account] += sign * m.size
                    position[m.maker_account] -= sign * m.size
            if n % 50 == 0:
                book.check_invariants()
                for is_buy in (True, False):
                    assert book_side(book, is_buy) == ref.side(is_buy)
