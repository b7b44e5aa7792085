"""The exchange engine: signed orders through verification, matching and the ledger, into a batch.

One ``Engine`` serves one operator cycle on top of a ``BatchBuilder`` (which applies every
transition to the cycle's working ledger and records it for the checkpoint). Deterministic and
free of I/O: the caller passes ``now`` and the signed requests.

Flow of an order: signature and slot checks -> a worst-case initial-margin pre-check of the
taker (an order that would break margin is rejected before it touches the book) -> the book
matches it; each prospective match goes through the ledger before the book applies it: the
maker's and the taker's orders are registered (ORDER records) right before their first fill,
then the FILL record. A maker whose fill the ledger refuses is taken off the book and matching
continues; a refusal on the taker's side ends its pass. IOC/FOK orders that were registered are
closed (ORDER_DONE).

Liquidations (``liquidate``) run after each price update: every position that is liquidatable at
a fresh mark is closed through the book at prices no worse than its bankruptcy price (LIQUIDATE
records); what the book cannot absorb goes to the insurance fund (BACKSTOP), and when the fund
cannot carry it, against the most profitable opposite positions (DELEVERAGE, BitMEX-style
ranking)."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from isoperp.batch.builder import BatchBuilder
from isoperp.errors import ProtocolError, TransitionRejected
from isoperp.ledger import arith, risk
from isoperp.ledger.ledger import Ledger
from isoperp.ledger.model import Market, Position
from isoperp.ledger.transitions import (
    Backstop,
    CancelOrder,
    Deleverage,
    Fill,
    Funding,
    Liquidate,
    OrderDone,
    PlaceOrder,
    PriceUpdate,
)
from isoperp.matching import IncomingOrder, Match, OrderBook, OrderKey, OrderRejected, TimeInForce
from isoperp.protocol.constants import (
    FLAG_POST_ONLY,
    FLAG_REDUCE_ONLY,
    FUNDING_RATE_CAP_MULTIPLE,
    INSURANCE_ACCOUNT,
    MAX_PRICE_AGE,
    ORDER_SLOTS,
    PPM,
    TIF_GTC,
)
from isoperp.protocol.signing import Domain, order_digest, recover_signer

logger = logging.getLogger(__name__)

# Book keys of the synthetic IOC orders that liquidations send through the book: negative nonces
# never collide with user orders (whose nonces are uint64).
_liquidation_nonces = itertools.count(-1, -1)


class _TakerRefused(Exception):
    """The ledger refused the taker's side of a match: the taker's pass ends."""

    def __init__(self, rejection: TransitionRejected) -> None:
        super().__init__(rejection.message)
        self.rejection = rejection


@dataclass(frozen=True, slots=True)
class OrderOutcome:
    """What happened to one submitted order."""

    key: OrderKey
    fills: tuple[Fill, ...]
    rested: bool
    remaining: int
    removed: tuple[tuple[OrderKey, str], ...]  # makers taken off the book, with the reason
    ended_by: str | None = None  # the ledger's reason when it refused the taker mid-pass


@dataclass
class LiquidationReport:
    """Liquidation transitions of one scan, for logs, the API and the demo summary."""

    liquidated: list[Liquidate] = field(default_factory=list)
    backstopped: list[Backstop] = field(default_factory=list)
    deleveraged: list[Deleverage] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.liquidated or self.backstopped or self.deleveraged)


def incoming_order(order: PlaceOrder) -> IncomingOrder:
    """The book's view of a signed order."""
    return IncomingOrder(
        key=(order.account_id, order.nonce),
        account_id=order.account_id,
        is_buy=order.is_buy,
        price=order.price,
        size=order.size,
        tif=TimeInForce(order.time_in_force),
        post_only=bool(order.flags & FLAG_POST_ONLY),
        reduce_only=bool(order.flags & FLAG_REDUCE_ONLY),
        expiry=order.expiry,
    )


def _reject(reason: str, message: str) -> OrderRejected:
    return OrderRejected(reason, message)


def _margin_shortfall(
    position: Position, market: Market, is_buy: bool, size: int, price: int
) -> int:
    """How far the position would fall short of its initial margin after buying/selling ``size``
    at ``price`` as the taker (funding settled, the higher fee); 0 if it holds or only reduces."""
    settled, _ = risk.settle_funding(position, market)
    n = arith.notional(size, price, market.notional_exp)
    fee = arith.fee(n, max(market.taker_fee_ppm, market.maker_fee_ppm))
    new_size = settled.size + (size if is_buy else -size)
    if abs(new_size) <= abs(settled.size) and (
        new_size == 0 or (new_size > 0) == (settled.size > 0)
    ):
        return 0  # only reduces: never blocked by the initial margin
    after = Position(
        settled.account_id,
        settled.market_id,
        new_size,
        settled.quote + (-n if is_buy else n) - fee,
        settled.basis,
        settled.funding_index,
    )
    return max(0, risk.initial_requirement(after, market) - risk.equity(after, market))


def _adl_score(p: Position, market: Market) -> int:
    """BitMEX deleveraging rank (ppm^2): PnL% x leverage if profitable, else PnL% / leverage."""
    notional = abs(arith.notional(p.size, market.mark_price, market.notional_exp))
    equity = max(1, risk.equity(p, market))
    cost = max(1, abs(p.basis))
    pnl = arith.notional(p.size, market.mark_price, market.notional_exp) - p.basis
    pnl_ppm = pnl * PPM // cost
    leverage_ppm = notional * PPM // equity
    if pnl > 0:
        return pnl_ppm * leverage_ppm // PPM
    return pnl_ppm * PPM // max(1, leverage_ppm)


class Engine:
    """Matching plus ledger for one cycle; ``builder`` wraps ``ledger`` (the working copy)."""

    def __init__(self, ledger: Ledger, builder: BatchBuilder, domain: Domain, *, now: int) -> None:
        self.ledger = ledger
        self.builder = builder
        self.domain = domain
        self.now = now
        self.books: dict[int, OrderBook] = {
            m.market_id: OrderBook(
                m.market_id, price_tick=m.price_tick, size_step=m.size_step, min_size=m.min_size
            )
            for m in ledger.markets
        }
        self._orders: dict[OrderKey, PlaceOrder] = {}  # signed orders the book knows
        # (account, slot) -> key of the last order that rested there; the book says if it still is
        self._slots: dict[tuple[int, int], OrderKey] = {}

    # ------------------------------------------------------------------ restoring the book

    def restore(self, order: PlaceOrder) -> bool:
        """Puts an order that was resting at the end of the last cycle back on the book with what
        the ledger says is left of it. False if nothing is left (filled, closed, expired)."""
        leaf = self.ledger.order(order.account_id, order.nonce % ORDER_SLOTS)
        filled = 0
        if leaf is not None and leaf.nonce == order.nonce:
            filled = leaf.filled
            if leaf.size <= leaf.filled:
                return False
        elif leaf is not None and leaf.nonce > order.nonce:
            return False  # its slot moved on: the order can never fill
        remaining = order.size - filled
        if remaining <= 0 or (order.expiry and order.expiry <= self.now):
            return False
        book = self.books[order.market_id]
        incoming = incoming_order(order)
        resting = IncomingOrder(
            incoming.key,
            incoming.account_id,
            incoming.is_buy,
            incoming.price,
            remaining,
            TimeInForce.GTC,
            True,
            False,
            incoming.expiry,
        )
        try:
            book.place(resting, now=self.now)  # post-only: a restored order never trades here
        except OrderRejected as exc:
            logger.warning("could not restore order %s: %s", incoming.key, exc.message)
            return False
        self._remember(incoming.key, order)
        return True

    # ------------------------------------------------------------------ orders

    def check_order(self, order: PlaceOrder) -> None:
        """The checks an order must pass before it touches the book (raises OrderRejected)."""
        market = self.ledger.market(order.market_id)
        if market is None:
            raise _reject("unknown_market", f"no market {order.market_id}")
        account = self.ledger.account(order.account_id)
        if account is None:
            raise _reject("unknown_account", f"no account {order.account_id}")
        try:
            signer = recover_signer(order_digest(self.domain, order), order.signature)
        except ProtocolError as exc:
            raise _reject("bad_signature", exc.message) from exc
        if signer != account.owner:
            raise _reject("bad_signature", f"signed by {signer}, not the owner {account.owner}")
        if order.time_in_force not in (0, 1, 2) or order.flags & ~(
            FLAG_POST_ONLY | FLAG_REDUCE_ONLY
        ):
            raise _reject("malformed", "unknown time in force or flags")
        self._check_slot(order)
        if not order.flags & FLAG_REDUCE_ONLY:
            self._check_margin(order, market)

    def _check_slot(self, order: PlaceOrder) -> None:
        """The order's slot (nonce mod 64) must not hold this nonce already, a newer one, or a
        live order, on-chain or on the book (a new order would kill it)."""
        slot = order.nonce % ORDER_SLOTS
        leaf = self.ledger.order(order.account_id, slot)
        if leaf is not None:
            if leaf.nonce == order.nonce:
                raise _reject("replay", f"order nonce {order.nonce} was already used")
            if leaf.nonce > order.nonce:
                raise _reject("stale_nonce", f"slot {slot} already holds nonce {leaf.nonce}")
            if leaf.filled < leaf.size and (leaf.expiry == 0 or leaf.expiry > self.now):
                raise _reject("slot_in_use", f"slot {slot} holds live order {leaf.nonce}")
        held = self._slots.get((order.account_id, slot))
        if held is not None and held[1] != order.nonce and self._is_resting(held):
            raise _reject("slot_in_use", f"slot {slot} holds resting order {held[1]}")

    def _check_margin(self, order: PlaceOrder, market: Market) -> None:
        """Worst case for the taker: the whole size fills at the worst price it can reach."""
        position = self.ledger.position(order.account_id, order.market_id)
        if position is None:
            raise _reject(
                "no_position",
                f"account {order.account_id} has no margin in market {order.market_id}: "
                "move margin into the position first",
            )
        # Worst case: the whole size fills at the limit price (fills are never worse than it).
        shortfall = _margin_shortfall(position, market, order.is_buy, order.size, order.price)
        if shortfall > 0:
            raise _reject(
                "insufficient_margin",
                f"this order could leave the position {shortfall} short of its initial margin",
            )

    def submit(self, order: PlaceOrder) -> OrderOutcome:
        """Checks, matches and books ``order``; raises OrderRejected (nothing changed)."""
        self.check_order(order)
        incoming = incoming_order(order)
        book = self.books[order.market_id]
        position = self.ledger.position(order.account_id, order.market_id)
        fills: list[Fill] = []

        def accept(match: Match) -> bool:
            return self._accept(match, order, fills)

        ended_by = None
        removed: tuple[tuple[OrderKey, str], ...] = ()
        try:
            result = book.place(
                incoming, now=self.now, position=position.size if position else 0, accept=accept
            )
        except _TakerRefused as refused:
            ended_by = refused.rejection.reason
            if not fills:
                raise _reject(refused.rejection.reason, refused.rejection.message) from refused
            rested, remaining = False, order.size - sum(f.size for f in fills)
        else:
            rested, remaining, removed = result.rested, result.remaining, result.removed
            if rested:
                self._remember(incoming.key, order)
        for gone, _why in removed:
            self._orders.pop(gone, None)
        self._close_if_done(order)
        return OrderOutcome(incoming.key, tuple(fills), rested, remaining, removed, ended_by)

    def _remember(self, key: OrderKey, order: PlaceOrder) -> None:
        self._orders[key] = order
        self._slots[(order.account_id, order.nonce % ORDER_SLOTS)] = key

    def _is_resting(self, key: OrderKey) -> bool:
        order = self._orders.get(key)
        return order is not None and self.books[order.market_id].get(key) is not None

    def _registered(self, order: PlaceOrder) -> bool:
        leaf = self.ledger.order(order.account_id, order.nonce % ORDER_SLOTS)
        return leaf is not None and leaf.nonce == order.nonce

    def _register(self, order: PlaceOrder) -> None:
        if not self._registered(order):
            self.builder.add(order)

    def _accept(self, match: Match, taker: PlaceOrder, fills: list[Fill]) -> bool:
        maker = self._orders.get(match.maker)
        if maker is None:
            return False  # not an order this engine can register (should not happen)
        try:
            self._register(maker)
        except TransitionRejected as exc:
            logger.info("maker %s refused by the ledger: %s", match.maker, exc.message)
            return False
        try:
            self._register(taker)
        except TransitionRejected as exc:
            raise _TakerRefused(exc) from exc
        fill = Fill(
            market_id=taker.market_id,
            maker_id=maker.account_id,
            maker_slot=maker.nonce % ORDER_SLOTS,
            taker_id=taker.account_id,
            taker_slot=taker.nonce % ORDER_SLOTS,
            size=match.size,
            price=match.price,
            timestamp=self.now,
        )
        try:
            self.builder.add(fill)
        except TransitionRejected as exc:
            if self._taker_at_fault(taker, match):
                raise _TakerRefused(exc) from exc
            logger.info("fill against maker %s refused: %s", match.maker, exc.message)
            return False
        fills.append(fill)
        return True

    def _taker_at_fault(self, taker: PlaceOrder, match: Match) -> bool:
        """Whether a refused fill fails on the taker's side (its own margin at this fill), so
        that one bad taker cannot strip the book of good makers."""
        market = self.ledger.market(taker.market_id)
        position = self.ledger.position(taker.account_id, taker.market_id)
        if market is None or position is None:
            return True
        return _margin_shortfall(position, market, taker.is_buy, match.size, match.price) > 0

    def _close_if_done(self, order: PlaceOrder) -> None:
        if order.time_in_force == TIF_GTC or not self._registered(order):
            return
        leaf = self.ledger.order(order.account_id, order.nonce % ORDER_SLOTS)
        if leaf is not None and leaf.filled < leaf.size:
            self.builder.add(OrderDone(order.account_id, order.nonce % ORDER_SLOTS))

    def cancel(self, cancel: CancelOrder) -> bool:
        """Applies a signed cancel: off the book, and on-chain so the order can never fill later.
        Returns whether the order was resting. Raises TransitionRejected (bad signature...)."""
        self.builder.add(cancel)  # the ledger checks the owner's signature and the slot
        key = (cancel.account_id, cancel.nonce)
        was_resting = False
        for book in self.books.values():
            if book.cancel(key) is not None:
                was_resting = True
        self._orders.pop(key, None)
        return was_resting

    def expire(self) -> list[OrderKey]:
        gone: list[OrderKey] = []
        for book in self.books.values():
            gone.extend(book.expire(self.now))
        for key in gone:
            self._orders.pop(key, None)
        return gone

    def resting(self) -> Iterable[tuple[OrderKey, int]]:
        """(key, remaining size) of every order on the books, for the journal."""
        for book in self.books.values():
            for is_buy in (True, False):
                for r in book.orders(is_buy):
                    yield r.key, r.remaining

    # ------------------------------------------------------------------ prices and funding

    def price(self, update: PriceUpdate) -> LiquidationReport:
        """Applies an oracle price, then liquidates what it made liquidatable."""
        self.builder.add(update)
        return self.liquidate(update.market_id)

    def funding_rate(self, market: Market) -> int:
        """Premium of the book against the mark (dYdX impact bid/ask), clamped to the cap."""
        book = self.books[market.market_id]
        impact_lots = max(market.min_size, 10 * market.size_step)
        bid = book.impact_price(False, impact_lots)
        ask = book.impact_price(True, impact_lots)
        mark = market.mark_price
        premium = 0
        if bid is not None and bid > mark:
            premium = (bid - mark) * PPM // mark
        elif ask is not None and ask < mark:
            premium = -((mark - ask) * PPM // mark)
        cap = FUNDING_RATE_CAP_MULTIPLE * (market.imf_ppm - market.mmf_ppm)
        return max(-cap, min(cap, premium))

    def fund(self, market_id: int) -> Funding | None:
        """A FUNDING record for ``market_id`` at the book's premium, when the mark is fresh."""
        market = self.ledger.market(market_id)
        assert market is not None
        if self.now <= market.funding_time or self.now - market.mark_time > MAX_PRICE_AGE:
            return None
        record = Funding(market_id, self.funding_rate(market), self.now)
        self.builder.add(record)
        return record

    # ------------------------------------------------------------------ liquidations

    def liquidate(self, market_id: int) -> LiquidationReport:
        report = LiquidationReport()
        market = self.ledger.market(market_id)
        assert market is not None
        if self.now - market.mark_time > MAX_PRICE_AGE:
            logger.info("market %d: mark is stale, no liquidations", market_id)
            return report
        candidates = [
            p
            for p in self.ledger.positions(market_id=market_id)
            if p.account_id != INSURANCE_ACCOUNT and risk.is_liquidatable(p, market)
        ]
        for position in candidates:
            self._liquidate_one(position.account_id, market_id, report)
        return report

    def _liquidate_one(self, account_id: int, market_id: int, report: LiquidationReport) -> None:
        book = self.books[market_id]
        for resting in book.orders_of(account_id):  # its own resting orders go first
            book.cancel(resting.key)
            self._orders.pop(resting.key, None)
        market = self.ledger.market(market_id)
        position = self.ledger.position(account_id, market_id)
        if market is None or position is None or position.size == 0:
            return
        bankrupt = risk.bankruptcy_price(position, market, on_tick=True)
        closing_buy = position.size < 0
        if bankrupt is not None and bankrupt > 0:
            key = (account_id, next(_liquidation_nonces))
            order = IncomingOrder(
                key,
                account_id,
                closing_buy,
                bankrupt,
                abs(position.size),
                TimeInForce.IOC,
                False,
                True,
                0,
            )

            def accept(match: Match) -> bool:
                maker = self._orders.get(match.maker)
                if maker is None:
                    return False
                try:
                    self._register(maker)
                    record = Liquidate(
                        market_id,
                        account_id,
                        maker.account_id,
                        maker.nonce % ORDER_SLOTS,
                        match.size,
                        match.price,
                        self.now,
                    )
                    self.builder.add(record)
                except TransitionRejected as exc:
                    logger.info("liquidation fill against %s refused: %s", match.maker, exc.message)
                    return False
                report.liquidated.append(record)
                return True

            try:
                book.place(order, now=self.now, position=position.size, accept=accept)
            except OrderRejected as exc:
                logger.info(
                    "liquidation order for %d refused by the book: %s", account_id, exc.message
                )
        self._backstop_rest(account_id, market_id, report)

    def _backstop_rest(self, account_id: int, market_id: int, report: LiquidationReport) -> None:
        position = self.ledger.position(account_id, market_id)
        market = self.ledger.market(market_id)
        if position is None or market is None or position.size == 0:
            return
        if not risk.is_liquidatable(position, market):
            return
        try:
            backstop = Backstop(market_id, account_id, self.now)
            self.builder.add(backstop)
            report.backstopped.append(backstop)
            return
        except TransitionRejected as exc:
            if exc.reason != "insurance_insolvent":
                logger.warning("backstop of %d refused: %s", account_id, exc.message)
                return
        for counterparty in self._deleverage_ranking(position, market):
            current = self.ledger.position(account_id, market_id)
            if current is None or current.size == 0:
                return
            other = self.ledger.position(counterparty.account_id, market_id)
            if other is None:
                continue
            size = min(abs(current.size), abs(other.size))
            record = Deleverage(market_id, account_id, counterparty.account_id, size, self.now)
            try:
                self.builder.add(record)
            except TransitionRejected as exc:
                logger.info(
                    "deleverage against %d refused: %s", counterparty.account_id, exc.message
                )
                continue
            report.deleveraged.append(record)

    def _deleverage_ranking(self, bankrupt: Position, market: Market) -> list[Position]:
        """Opposite positions in BitMEX's order: profitable ones first by PnL% x leverage, then
        the rest by PnL% / leverage; ties by account id, so the order is deterministic."""
        opposite = [
            p
            for p in self.ledger.positions(market_id=market.market_id)
            if p.size != 0
            and (p.size > 0) != (bankrupt.size > 0)
            and p.account_id != INSURANCE_ACCOUNT
        ]
        return sorted(opposite, key=lambda p: (-_adl_score(p, market), p.account_id))
