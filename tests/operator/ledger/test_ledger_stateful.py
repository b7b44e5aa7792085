"""Random deposits, withdrawals, margin moves, orders, fills, cancels, oracle prices, funding,
liquidations, backstops, deleveraging, forced requests (withdrawals and exits from the L1 queue,
by owners and by strangers, for unknown accounts and markets), deposits that cannot be credited
(DEPOSIT_REJECTED refunds) and fee collection against the ledger's invariants.

After every step: conservation (liabilities + pending funding + dust == deposits taken off the
queue - the exchange leaf's withdrawal_total, with 0 <= dust <= funding settlements + open
positions), the withdrawals tree (every payout appended in order: the leaves, their total and
the root match a tree rebuilt from the expected leaves), per-market sizes sum to zero, open
interest == sum of longs, no empty position leaves, a flat position leaf holds a positive quote
and no basis, an open one a basis of its size's sign, the insurance account no collateral, every
registered order's ``filled`` equals the lots the accepted fills gave it, every other order slot
is a tombstone, the forced cursor counts the served requests, stored leaf bytes == encodings of
the model objects and decode back to them, and the incremental root == the root of a tree rebuilt
from scratch. Every rejected step must leave the root and every leaf byte unchanged. A liquidation,
backstop or deleverage must not change any account or position leaf but those of the liquidated
account, its maker or counterparty, and the insurance account; a forced request none but those of
its account and the insurance account. Forced requests are never rejected in queue order, and
always rejected out of it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from isoperp.errors import TransitionRejected
from isoperp.ledger import risk
from isoperp.ledger.ledger import (
    AppliedBackstop,
    AppliedDeleverage,
    AppliedFill,
    AppliedForcedExit,
    AppliedLiquidation,
    AppliedMarginTransfer,
    AppliedOrder,
    rebuild_root,
)
from isoperp.ledger.markets import BTC_USD, ETH_USD
from isoperp.ledger.model import Order
from isoperp.ledger.transitions import (
    Backstop,
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
    Withdraw,
)
from isoperp.protocol.constants import (
    FLAG_REDUCE_ONLY,
    FUNDING_RATE_CAP_MULTIPLE,
    INSURANCE_ACCOUNT,
    INSURANCE_FEE_SHARE_PPM,
    MAX_ACCOUNTS,
    PPM,
    STATE_TREE_DEPTH,
    SYSTEM_WITHDRAWAL_ACCOUNT,
    UINT128_MAX,
    WITHDRAWAL_TREE_DEPTH,
    ZERO_ADDRESS,
)
from isoperp.protocol.header import WithdrawalLeaf
from isoperp.protocol.leaves import account_index, decode_leaf, encode_leaf, index_of
from isoperp.tree.merkle import SparseMerkleTree, hash_leaf

# A third market that exercises the rounding paths: negative notional exponent (floors), a price
# grid of 5 ticks, a size step of 2, a maker rebate and a higher taker fee.
ODD = dataclasses.replace(
    BTC_USD,
    market_id=2,
    mark_price=10_005,
    notional_exp=-1,
    price_tick=5,
    size_step=2,
    min_size=2,
    maker_fee_ppm=-200,
    taker_fee_ppm=700,
    imf_ppm=100_000,
    mmf_ppm=60_000,
    symbol="ODD-USD",
)
MARKETS = (BTC_USD, ETH_USD, ODD)
N_USERS = 4
START = 1_000
STRANGER = "0x00000000000000000000000000000000DeaDBeef"  # owns no account

users = st.integers(0, N_USERS - 1)
amounts = st.one_of(st.integers(0, 20_000_000_000), st.sampled_from([0, 1]))
market_ids = st.integers(0, len(MARKETS) - 1)
requesters = st.sampled_from([-1] * 6 + list(range(N_USERS + 2)))  # -1: the account's owner


def _grid(value: int, step: int) -> int:
    return max(step, value // step * step)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(
        self,
        harness_factory: Callable[..., Any],
        user_factory: Callable[[int], Any],
        insurance: Any,
    ):
        super().__init__()
        self.h = harness_factory(MARKETS)
        self.insurance = insurance
        self.users = [user_factory(i + 1) for i in range(N_USERS)]
        self.accepted_requests: list[Any] = []
        self.rejections: dict[str, int] = {}
        self.now = START
        self.settlements = 0  # funding settlements so far: bounds the funding dust
        self.filled: dict[tuple[int, int], int] = {}  # (account, nonce) -> lots filled
        self.registered: set[tuple[int, int]] = set()
        self.served: list[ForcedWithdraw | ForcedExit] = []  # forced requests served so far
        self.payouts: list[WithdrawalLeaf] = []  # every withdrawals-tree leaf expected so far

    # -- helpers

    def _apply(self, t: Any) -> Any:
        """Applies ``t``; on rejection checks that nothing changed and returns None."""
        before = self.h.snapshot()
        try:
            preview = self.h.ledger.validate(t)
        except TransitionRejected as exc:
            preview = exc
        try:
            result = self.h.ledger.apply(t)
        except TransitionRejected as exc:
            assert isinstance(preview, TransitionRejected) and preview.reason == exc.reason
            self.h.assert_unchanged(before)
            self.rejections[exc.reason] = self.rejections.get(exc.reason, 0) + 1
            return None
        assert preview == result
        self._account_for(result)
        return result

    def _account_for(self, result: Any) -> None:
        """Ghost bookkeeping of funding settlements and order fills."""
        if isinstance(result, AppliedMarginTransfer):
            self.settlements += 1
        elif isinstance(result, AppliedBackstop | AppliedDeleverage | AppliedForcedExit):
            self.settlements += 2
        elif isinstance(result, AppliedOrder):
            key = (result.order.account_id, result.order.nonce)
            assert key not in self.registered, "an order was registered twice"
            self.registered.add(key)
            self.filled[key] = 0
        if isinstance(result, AppliedFill | AppliedLiquidation):
            self.settlements += 2
            sides = [result.maker, result.taker if isinstance(result, AppliedFill) else None]
            for side in sides:
                if side is not None and side.order is not None:
                    key = (side.account_id, side.order.nonce)
                    self.filled[key] += result.size

    def _user_id(self, index: int) -> int:
        return self.users[index].account_id

    def _fresh_price(self, market_id: int) -> None:
        """A new signed mark at ``now`` (unchanged price) so liquidations see a fresh mark."""
        self.now += 1
        market = self.h.ledger.market(market_id)
        self._apply(self.h.price_tx(market.mark_price, self.now, market_id=market_id))

    def _leaves_of_others(self, involved: set[int]) -> dict[int, bytes]:
        """Account and position leaves of every account not in ``involved``."""
        ledger = self.h.ledger
        out = {
            account_index(a.account_id): encode_leaf(a)
            for a in ledger.accounts()
            if a.account_id not in involved
        }
        for p in ledger.positions():
            if p.account_id not in involved:
                out[index_of(p)] = encode_leaf(p)
        return out

    def _isolated(self, t: Any, involved: set[int]) -> Any:
        before = self._leaves_of_others(involved | {INSURANCE_ACCOUNT})
        result = self._apply(t)
        assert self._leaves_of_others(involved | {INSURANCE_ACCOUNT}) == before
        return result

    # -- setup and account requests

    @initialize(collateral=st.lists(st.integers(10**9, 2 * 10**10), min_size=3, max_size=3))
    def fund(self, collateral: list[int]) -> None:
        """Users 0-2 start with collateral, a fifth of it in every market; user 3 starts empty."""
        for user, amount in zip(self.users, collateral, strict=False):
            self.h.deposit(user, amount)
            for market in range(len(MARKETS)):
                t = self.h.margin_tx(user, market, amount // 5)
                if self._apply(t) is not None:
                    self.accepted_requests.append(t)

    @rule(user=users, amount=st.integers(1, 20_000_000_000))
    def deposit(self, user: int, amount: int) -> None:
        self.h.deposit(self.users[user], amount)

    @rule(user=users, amount=amounts)
    def withdraw(self, user: int, amount: int) -> None:
        u = self.users[user]
        if u.account_id < 0:
            return
        collateral = self.h.ledger.account(u.account_id).collateral
        t = self.h.withdraw_tx(u, amount)
        result = self._apply(t)
        assert (result is not None) == (0 < amount <= collateral)
        if result is not None:
            self.h.net_deposits -= amount
            self.payouts.append(WithdrawalLeaf(u.account_id, u.address, amount))
            self.accepted_requests.append(t)

    @rule(user=users, extra=st.integers(1, 5))
    def deposit_overflowing(self, user: int, extra: int) -> None:
        """A deposit the account cannot hold: never a DEPOSIT, refunded by DEPOSIT_REJECTED.

        Checked on a copy of the ledger: a real vault's queue total stays below 2^128, so such a
        deposit cannot happen, and the ~2^128 refund would leave no room in the withdrawal total
        for the payouts of later steps."""
        u = self.users[user]
        account = self.h.ledger.account(u.account_id) if u.account_id >= 0 else None
        if account is None or account.collateral < extra:
            return
        amount = UINT128_MAX - account.collateral + extra
        ledger = self.h.ledger.copy()
        cursor = ledger.exchange.deposit_cursor
        try:
            ledger.apply(Deposit(cursor, u.account_id, u.address, amount, self.now))
        except TransitionRejected as exc:
            assert exc.reason == "collateral_overflow"
        else:
            raise AssertionError("an uncreditable deposit was credited")
        refund_tx = DepositRejected(cursor, u.account_id, u.address, amount, self.now)
        if ledger.exchange.withdrawal_total + amount > UINT128_MAX:  # no room in the total
            try:
                ledger.apply(refund_tx)
            except TransitionRejected as exc:
                assert exc.reason == "overflow"
                return
            raise AssertionError("the withdrawal total left uint128")
        result = ledger.apply(refund_tx)
        assert result.reason == "collateral_overflow"
        assert result.withdrawal_index == len(self.payouts)
        assert ledger.exchange.deposit_cursor == cursor + 1
        assert ledger.account(u.account_id) == account
        refund = WithdrawalLeaf(SYSTEM_WITHDRAWAL_ACCOUNT, u.address, amount)
        assert ledger.withdrawals() == [*self.payouts, refund]
        deposited = self.h.net_deposits + sum(w.amount for w in self.payouts) + amount
        ledger.check_invariants(
            deposited - ledger.exchange.withdrawal_total,
            max_funding_dust=self.settlements + len(list(ledger.positions())),
        )

    @rule(user=st.integers(0, N_USERS), amount=amounts)
    def deposit_rejected_creditable(self, user: int, amount: int) -> None:
        """A DEPOSIT_REJECTED of a deposit that can be credited is a rule break."""
        owner = self.users[user].address if user < N_USERS else STRANGER
        existing = self.h.ledger.account_id_of(owner)
        account_id = self.h.ledger.exchange.next_account_id if existing is None else existing
        cursor = self.h.ledger.exchange.deposit_cursor
        before = self.h.snapshot()
        try:
            self.h.ledger.apply(DepositRejected(cursor, account_id, owner, amount, self.now))
        except TransitionRejected as exc:
            assert exc.reason == ("bad_amount" if amount == 0 else "deposit_creditable")
        else:
            raise AssertionError("a creditable deposit was refunded")
        self.h.assert_unchanged(before)

    @rule(share=st.integers(0, 1_100))
    def collect_fees(self, share: int) -> None:
        """FEE_COLLECT of ``share`` permille of the fee balance (over 1000: more than there is)."""
        ex = self.h.ledger.exchange
        amount = ex.fee_balance * share // 1_000
        result = self._isolated(FeeCollect(amount), set())
        if not 0 < amount <= ex.fee_balance:
            assert result is None
            return
        to_insurance = amount * INSURANCE_FEE_SHARE_PPM // PPM
        assert (result.to_insurance, result.paid) == (to_insurance, amount - to_insurance)
        after = self.h.ledger.exchange
        assert after.fee_balance == ex.fee_balance - amount
        assert after.insurance_fund == ex.insurance_fund + to_insurance
        self.h.net_deposits -= result.paid
        self.payouts.append(
            WithdrawalLeaf(SYSTEM_WITHDRAWAL_ACCOUNT, self.h.ledger.fee_recipient, result.paid)
        )

    @rule(
        user=users,
        market=st.integers(0, len(MARKETS)),  # len(MARKETS) is an unknown market
        percent=st.integers(-110, 110),
        raw=st.sampled_from([None] * 8 + [0, -1, 1, -(1 << 100), 1 << 100]),
    )
    def margin(self, user: int, market: int, percent: int, raw: int | None) -> None:
        """Moves ``percent`` of the free collateral in (or of the position's quote out)."""
        u = self.users[user]
        if u.account_id < 0:
            return
        if raw is not None:
            amount = raw
        elif percent >= 0:
            amount = self.h.ledger.account(u.account_id).collateral * percent // 100
        else:
            pos = self.h.ledger.position(u.account_id, market)
            amount = (pos.quote if pos is not None else 1) * -percent // -100
        t = self.h.margin_tx(u, market, amount)
        if self._apply(t) is not None:
            self.accepted_requests.append(t)

    # -- orders and fills

    @rule(
        user=users,
        market=market_ids,
        is_buy=st.booleans(),
        permille=st.integers(-50, 50),
        lots=st.integers(1, 3_000),
        tif=st.sampled_from([0, 0, 0, 1, 2]),
        flags=st.sampled_from([0, 0, 0, 1, 2, 3]),
        nonce=st.sampled_from([None] * 6 + [0, 1, 64, 65]),
        expiry=st.sampled_from([0, 0, 0, START, 10**12]),
    )
    def place(self, user: int, market: int, is_buy: bool, permille: int, lots: int, tif: int,
              flags: int, nonce: int | None, expiry: int) -> None:
        u = self.users[user]
        if u.account_id < 0:
            return
        m = self.h.ledger.market(market)
        price = _grid(m.mark_price * (1000 + permille) // 1000, m.price_tick)
        size = _grid(lots, m.size_step)
        self._apply(
            self.h.order_tx(
                u, is_buy, price, size, market_id=market, tif=tif, flags=flags, nonce=nonce,
                expiry=expiry,
            )
        )

    @rule(data=st.data(), fraction=st.integers(1, 120), exact_price=st.booleans())
    def fill_orders(self, data: st.DataObject, fraction: int, exact_price: bool) -> None:
        """A fill between two registered live orders (random: often rejected)."""
        live = [o for o in self.h.ledger.orders() if o.live]
        if len(live) < 2:
            return
        maker = data.draw(st.sampled_from(live))
        taker = data.draw(st.sampled_from(live))
        m = self.h.ledger.market(maker.market_id)
        size = _grid(maker.remaining * fraction // 100, m.size_step)
        price = maker.price if exact_price else taker.price
        self.now += data.draw(st.integers(0, 5))
        fill = Fill(
            maker.market_id, maker.account_id, maker.slot, taker.account_id, taker.slot, size,
            price, self.now,
        )
        self._apply(fill)

    @rule(
        market=market_ids,
        maker=users,
        taker=users,
        taker_is_buy=st.booleans(),
        lots=st.integers(1, 3_000) | st.integers(1, 40_000),
        permille=st.integers(-20, 20) | st.integers(-100, 100),
        taker_tif=st.sampled_from([0, 1]),
    )
    def cross(self, market: int, maker: int, taker: int, taker_is_buy: bool, lots: int,
              permille: int, taker_tif: int) -> None:
        """Registers a maker and a taker order and fills them against each other."""
        m = self.h.ledger.market(market)
        price = _grid(m.mark_price * (1000 + permille) // 1000, m.price_tick)
        size = _grid(lots, m.size_step)
        mu, tu = self.users[maker], self.users[taker]
        if mu.account_id < 0 or tu.account_id < 0:
            return
        made = self._apply(self.h.order_tx(mu, not taker_is_buy, price, size, market_id=market))
        took = self._apply(
            self.h.order_tx(tu, taker_is_buy, price, size, market_id=market, tif=taker_tif)
        )
        if made is None or took is None:
            return
        self._apply(
            Fill(market, mu.account_id, made.order.slot, tu.account_id, took.order.slot, size,
                 price, self.now)
        )
        if taker_tif:
            self._apply(OrderDone(tu.account_id, took.order.slot))

    @rule(data=st.data(), halves=st.integers(1, 4), as_taker=st.booleans(),
          permille=st.integers(-20, 20))
    def reduce_or_flip(self, data: st.DataObject, halves: int, as_taker: bool,
                       permille: int) -> None:
        """An open position trades against its side: half-close, close, or flip (x1.5, x2)."""
        open_positions = [
            p
            for p in self.h.ledger.positions()
            if p.size != 0 and p.account_id != INSURANCE_ACCOUNT
        ]
        if not open_positions:
            return
        pos = data.draw(st.sampled_from(open_positions))
        owner = next(u for u in self.users if u.account_id == pos.account_id)
        others = [u for u in self.users if u.account_id not in (-1, pos.account_id)]
        other = data.draw(st.sampled_from(others))
        m = self.h.ledger.market(pos.market_id)
        size = _grid(abs(pos.size) * halves // 2, m.size_step)
        price = _grid(m.mark_price * (1000 + permille) // 1000, m.price_tick)
        sells = pos.size > 0
        maker, taker = (other, owner) if as_taker else (owner, other)
        taker_is_buy = not sells if as_taker else sells
        made = self._apply(
            self.h.order_tx(maker, not taker_is_buy, price, size, market_id=pos.market_id)
        )
        took = self._apply(
            self.h.order_tx(taker, taker_is_buy, price, size, market_id=pos.market_id)
        )
        if made is None or took is None:
            return
        self._apply(
            Fill(pos.market_id, maker.account_id, made.order.slot, taker.account_id,
                 took.order.slot, size, price, self.now)
        )

    def _budget(self, account_id: int, market_id: int, share: int) -> int:
        """Lots a flat position with margin can open at the mark, ``share``% of the IMR limit."""
        pos = self.h.ledger.position(account_id, market_id)
        market = self.h.ledger.market(market_id)
        if pos is None or pos.size != 0:
            return 0
        per_lot = max(1, market.notional(1, market.mark_price))
        per_lot_margin = per_lot * (market.imf_ppm + max(0, market.taker_fee_ppm)) // 1_000_000
        return pos.quote * share // 100 // max(1, per_lot_margin)

    @rule(market=market_ids, maker=users, taker=users, taker_is_buy=st.booleans(),
          share=st.integers(50, 97))
    def leverage_up(self, market: int, maker: int, taker: int, taker_is_buy: bool,
                    share: int) -> None:
        """Two flat users open opposite positions near their initial-margin limit at the mark, so
        that price moves make them liquidatable or bankrupt."""
        mu, tu = self.users[maker], self.users[taker]
        if mu.account_id < 0 or tu.account_id < 0 or maker == taker:
            return
        m = self.h.ledger.market(market)
        lots = min(self._budget(mu.account_id, market, share),
                   self._budget(tu.account_id, market, share))
        size = lots // m.size_step * m.size_step
        if size < m.min_size:
            return
        price = m.mark_price // m.price_tick * m.price_tick
        made = self._apply(self.h.order_tx(mu, not taker_is_buy, price, size, market_id=market))
        took = self._apply(self.h.order_tx(tu, taker_is_buy, price, size, market_id=market))
        if made is not None and took is not None:
            self._apply(
                Fill(market, mu.account_id, made.order.slot, tu.account_id, took.order.slot,
                     size, price, self.now)
            )

    @rule(market=market_ids, permille=st.sampled_from([-300, -120, -60, -30, 30, 60, 120, 300]))
    def shock(self, market: int, permille: int) -> None:
        """A large oracle move (flash crash or squeeze)."""
        self.now += 1
        m = self.h.ledger.market(market)
        price = max(m.price_tick, m.mark_price * (1000 + permille) // 1000)
        self._apply(self.h.price_tx(price, self.now, market_id=market))

    @rule(
        data=st.data(),
        market=market_ids,
        maker=users,
        taker=users,
        taker_is_buy=st.booleans(),
        share=st.integers(80, 97),
        permille=st.sampled_from([-200, -100, -70, -45, 45, 70, 100, 200]),
        action=st.sampled_from(["liquidate", "backstop", "deleverage", "unwind", "exit"]),
    )
    def stress(self, data: st.DataObject, market: int, maker: int, taker: int,
               taker_is_buy: bool, share: int, permille: int, action: str) -> None:
        """Leverage up, move the mark, then liquidate, backstop, deleverage, unwind, or serve a
        forced exit of an open position (in bad debt after large moves)."""
        self.leverage_up(market, maker, taker, taker_is_buy, share)
        self.shock(market, permille)
        if action == "liquidate":
            self.liquidate(data, data.draw(st.integers(1, 100)), data.draw(st.integers(0, 100)))
        elif action == "backstop":
            self.backstop(data)
        elif action == "deleverage":
            self.deleverage(data, data.draw(st.integers(1, 100)))
        elif action == "exit":
            self.exit_open_position(data)
        else:
            self.insurance_unwind(data, data.draw(st.integers(1, 100)), 0)

    @rule(user=users, nonce=st.integers(0, 140))
    def cancel(self, user: int, nonce: int) -> None:
        u = self.users[user]
        if u.account_id >= 0:
            self._apply(self.h.cancel_tx(u, nonce))

    @rule(user=users, slot=st.integers(0, 63))
    def order_done(self, user: int, slot: int) -> None:
        u = self.users[user]
        if u.account_id >= 0:
            self._apply(OrderDone(u.account_id, slot))

    # -- oracle and funding

    @rule(
        market=market_ids,
        permille=st.integers(-60, 60) | st.sampled_from([-300, -150, 150, 300]),
        dt=st.integers(0, 90),
    )
    def price(self, market: int, permille: int, dt: int) -> None:
        self.now += dt
        m = self.h.ledger.market(market)
        price = max(1, m.mark_price * (1000 + permille) // 1000)
        self._apply(self.h.price_tx(price, self.now, market_id=market))

    @rule(market=market_ids, share=st.integers(-120, 120), dt=st.integers(1, 28_800))
    def funding(self, market: int, share: int, dt: int) -> None:
        """A fresh mark, then funding at ``share``% of the rate cap (beyond 100%: rejected)."""
        self.now += dt
        m = self.h.ledger.market(market)
        self._apply(self.h.price_tx(m.mark_price, self.now, market_id=market))
        cap = FUNDING_RATE_CAP_MULTIPLE * (m.imf_ppm - m.mmf_ppm)
        self._apply(Funding(market, cap * share // 100, self.now))

    # -- liquidations

    def _liquidatable(self, data: st.DataObject, *, bankrupt: bool = False) -> Any:
        candidates = []
        for p in self.h.ledger.positions():
            market = self.h.ledger.market(p.market_id)
            if p.account_id == INSURANCE_ACCOUNT or p.size == 0:
                continue
            if (risk.is_bankrupt if bankrupt else risk.is_liquidatable)(p, market):
                candidates.append(p)
        return data.draw(st.sampled_from(candidates)) if candidates else None

    @rule(data=st.data(), part=st.integers(1, 100), towards_mark=st.integers(0, 100))
    def liquidate(self, data: st.DataObject, part: int, towards_mark: int) -> None:
        """A liquidatable position is closed (partly) against a fresh maker order priced between
        its bankruptcy price and the mark."""
        pos = self._liquidatable(data)
        if pos is None:
            return
        self._fresh_price(pos.market_id)
        market = self.h.ledger.market(pos.market_id)
        bankruptcy = risk.bankruptcy_price(pos, market, on_tick=True)
        mark = market.mark_price
        price = _grid(max(1, bankruptcy + (mark - bankruptcy) * towards_mark // 100), 1)
        price = _grid(price, market.price_tick)
        size = _grid(abs(pos.size) * part // 100, market.size_step)
        makers = [u for u in self.users if u.account_id not in (-1, pos.account_id)]
        maker = data.draw(st.sampled_from(makers))
        made = self._apply(
            self.h.order_tx(maker, pos.size > 0, price, max(size, market.min_size),
                            market_id=pos.market_id)
        )
        if made is None:
            return
        t = Liquidate(pos.market_id, pos.account_id, maker.account_id, made.order.slot, size,
                      price, self.now)
        self._isolated(t, {pos.account_id, maker.account_id})

    @rule(data=st.data())
    def backstop(self, data: st.DataObject) -> None:
        pos = self._liquidatable(data)
        if pos is None:
            return
        self._fresh_price(pos.market_id)
        self._isolated(Backstop(pos.market_id, pos.account_id, self.now), {pos.account_id})

    @rule(data=st.data(), part=st.integers(1, 100))
    def deleverage(self, data: st.DataObject, part: int) -> None:
        pos = self._liquidatable(data, bankrupt=True)
        if pos is None:
            return
        self._fresh_price(pos.market_id)
        market = self.h.ledger.market(pos.market_id)
        opposite = [
            p for p in self.h.ledger.positions(market_id=pos.market_id) if p.size * pos.size < 0
        ]
        if not opposite:
            return
        other = data.draw(st.sampled_from(opposite))
        size = _grid(min(abs(pos.size), abs(other.size)) * part // 100, market.size_step)
        t = Deleverage(pos.market_id, pos.account_id, other.account_id, size, self.now)
        self._isolated(t, {pos.account_id, other.account_id})

    @rule(data=st.data(), part=st.integers(1, 100), permille=st.integers(-30, 30))
    def insurance_unwind(self, data: st.DataObject, part: int, permille: int) -> None:
        """The insurance account sells (buys) part of a position it took, unsigned and
        reduce-only, to a user's order."""
        held = list(self.h.ledger.positions(account_id=INSURANCE_ACCOUNT))
        held = [p for p in held if p.size != 0]
        if not held:
            return
        pos = data.draw(st.sampled_from(held))
        market = self.h.ledger.market(pos.market_id)
        size = _grid(abs(pos.size) * part // 100, market.size_step)
        price = _grid(market.mark_price * (1000 + permille) // 1000, market.price_tick)
        buyer = data.draw(st.sampled_from([u for u in self.users if u.account_id >= 0]))
        ins = self.h.order_tx(self.insurance, pos.size < 0, price, max(size, market.min_size),
                              market_id=pos.market_id, flags=FLAG_REDUCE_ONLY)
        made = self._apply(self.h.order_tx(buyer, pos.size > 0, price, size,
                                           market_id=pos.market_id))
        took = self._apply(ins)
        if made is None or took is None:
            return
        self._apply(Fill(pos.market_id, buyer.account_id, made.order.slot, INSURANCE_ACCOUNT,
                         took.order.slot, size, price, self.now))

    @rule(data=st.data())
    def replay_request(self, data: st.DataObject) -> None:
        if not self.accepted_requests:
            return
        t = data.draw(st.sampled_from(self.accepted_requests))
        assert isinstance(t, Withdraw | MarginTransfer)
        before = self.h.snapshot()
        try:
            self.h.ledger.apply(t)
        except TransitionRejected as exc:
            assert exc.reason == "bad_nonce"
        else:
            raise AssertionError("a replayed request was accepted")
        self.h.assert_unchanged(before)

    # -- forced requests (the L1 queue)

    def _forced_target(self, user: int, override: int | None, requester: int) -> tuple[int, str]:
        """(account id, requester address): the user's own account, or ``override`` (an unknown
        id, the insurance account, one beyond the layout); requester = -1 the user itself, a user
        (maybe another one), ``N_USERS`` = a stranger, ``N_USERS + 1`` = the zero address."""
        u = self.users[user]
        if requester < 0:
            requester = user
        account_id = u.account_id if override is None else override
        if account_id < 0:
            account_id = 77  # the user never deposited: an unknown account
        if requester == N_USERS:
            return account_id, STRANGER
        if requester == N_USERS + 1:
            return account_id, ZERO_ADDRESS
        return account_id, self.users[requester].address

    def _owned(self, account_id: int, requester: str) -> bool:
        account = self.h.ledger.account(account_id)
        return (
            account is not None
            and account_id != INSURANCE_ACCOUNT
            and account.owner.lower() == requester.lower()
        )

    def _serve(self, t: ForcedWithdraw | ForcedExit, account_id: int) -> Any:
        involved = {account_id} if account_id < MAX_ACCOUNTS else set()
        result = self._isolated(t, involved)
        assert result is not None, "a forced request in queue order was rejected"
        assert self.h.ledger.exchange.forced_cursor == t.forced_index + 1
        self.served.append(t)
        self.h.net_deposits -= result.paid
        if result.paid > 0:
            self.payouts.append(WithdrawalLeaf(account_id, t.requester, result.paid))
        return result

    @rule(
        user=users,
        requester=requesters,
        amount=amounts | st.sampled_from([(1 << 128) - 1, 1]),
        override=st.sampled_from([None] * 8 + [INSURANCE_ACCOUNT, 99, MAX_ACCOUNTS]),
    )
    def forced_withdraw(self, user: int, requester: int, amount: int, override: int | None) -> None:
        account_id, who = self._forced_target(user, override, requester)
        owned = self._owned(account_id, who)
        account = self.h.ledger.account(account_id)
        free = account.collateral if account is not None else 0
        t = ForcedWithdraw(self.h.ledger.exchange.forced_cursor, account_id, who, amount, self.now)
        result = self._serve(t, account_id)
        assert result.paid == (min(amount, free) if owned else 0)
        assert (result.noop is None) == (result.paid > 0)

    @rule(
        user=users,
        requester=requesters,
        market=st.sampled_from([0, 0, 1, 1, 2, 2, len(MARKETS), 63, 64]),
        override=st.sampled_from([None] * 8 + [INSURANCE_ACCOUNT, 99]),
        dt=st.integers(0, 10_000),
    )
    def forced_exit(self, user: int, requester: int, market: int, override: int | None,
                    dt: int) -> None:
        """Exits at whatever mark the market holds: no fresh price first (often stale)."""
        self.now += dt
        account_id, who = self._forced_target(user, override, requester)
        owned = self._owned(account_id, who)
        pos = self.h.ledger.position(account_id, market) if owned else None
        m = self.h.ledger.market(market)
        equity = risk.equity(pos, m) if pos is not None and m is not None else None
        t = ForcedExit(self.h.ledger.exchange.forced_cursor, account_id, market, who, self.now)
        result = self._serve(t, account_id)
        if equity is None:
            assert result.noop is not None and result.paid == 0
        else:
            assert (result.noop, result.paid) == (None, max(0, equity))
            assert self.h.ledger.position(account_id, market) is None

    @rule(data=st.data())
    def exit_open_position(self, data: st.DataObject) -> None:
        """The owner of an open position (any: healthy, liquidatable or bankrupt) exits it."""
        candidates = [
            p for p in self.h.ledger.positions()
            if p.account_id != INSURANCE_ACCOUNT and p.size != 0
        ]
        if not candidates:
            return
        pos = data.draw(st.sampled_from(candidates))
        user = next(i for i, u in enumerate(self.users) if u.account_id == pos.account_id)
        self.forced_exit(user, -1, pos.market_id, None, 0)

    @rule(data=st.data(), ahead=st.integers(1, 3))
    def forced_out_of_order(self, data: st.DataObject, ahead: int) -> None:
        """An entry served before, or one beyond the next: always rejected."""
        cursor = self.h.ledger.exchange.forced_cursor
        if self.served and data.draw(st.booleans()):
            t = data.draw(st.sampled_from(self.served))
        else:
            user = self.users[0]
            t = ForcedWithdraw(cursor + ahead, max(user.account_id, 0), user.address, 1, self.now)
        before = self.h.snapshot()
        try:
            self.h.ledger.apply(t)
        except TransitionRejected as exc:
            assert exc.reason == "forced_out_of_order"
        else:
            raise AssertionError("a forced request out of queue order was accepted")
        self.h.assert_unchanged(before)

    # -- invariants

    @invariant()
    def invariants_hold(self) -> None:
        ledger = self.h.ledger
        positions = list(ledger.positions())
        ex = ledger.exchange
        # the withdrawals tree holds exactly the expected payouts, in order
        assert ledger.withdrawals() == self.payouts
        assert ex.withdrawal_count == len(self.payouts)
        assert ex.withdrawal_total == sum(w.amount for w in self.payouts)
        rebuilt_payouts = SparseMerkleTree(
            WITHDRAWAL_TREE_DEPTH, ((i, w.leaf_hash) for i, w in enumerate(self.payouts))
        )
        assert ex.withdrawals_root == rebuilt_payouts.root
        # conservation: every deposit taken off the queue (credited or refunded; the ghost's
        # net deposits plus its payouts) minus the exchange leaf's withdrawal total
        deposited = self.h.net_deposits + sum(w.amount for w in self.payouts)
        ledger.check_invariants(
            deposited - ex.withdrawal_total, max_funding_dust=self.settlements + len(positions)
        )
        models = [
            *ledger.accounts(), *positions, *ledger.orders(), *ledger.markets, ledger.exchange
        ]
        stored = dict(ledger.leaves())
        assert stored == {index_of(leaf): encode_leaf(leaf) for leaf in models}
        rebuilt = SparseMerkleTree(
            STATE_TREE_DEPTH, ((i, hash_leaf(data)) for i, data in stored.items())
        )
        assert rebuilt.root == ledger.state_root == rebuild_root(models)
        # The tree's leaves decode (canonical words, leaf bounds) back to the model objects at
        # their own index: what a reader of the leaves (a proof, an escape) sees is the model.
        by_index = {index_of(leaf): leaf for leaf in models}
        for index, data in stored.items():
            decoded = decode_leaf(data)
            assert index_of(decoded) == index and decoded == by_index[index]
        for account in ledger.accounts():
            assert ledger.account_id_of(account.owner) == account.account_id
        # Balance bounds of PROTOCOL 2 and 3.2 the leaf constructors do not enforce.
        assert ledger.account(INSURANCE_ACCOUNT).collateral == 0  # its capital is the fund
        assert ledger.exchange.forced_cursor == len(self.served)
        for p in positions:
            if p.size == 0:  # margin parked in a market: a flat leaf holds a positive quote
                assert p.quote > 0 and p.basis == 0, p
            else:  # basis: the signed cost of the open size, same sign as the size
                assert p.basis * p.size >= 0, p
        for market in ledger.markets:
            assert sum(p.size for p in positions if p.market_id == market.market_id) == 0
        for order in ledger.orders():
            key = (order.account_id, order.nonce)
            if key in self.registered:  # its fills are exactly the accepted fills
                assert self.filled[key] == order.filled
            else:  # never registered: a tombstone (cancelled first), every order field zero
                assert order == Order.tombstone(order.account_id, order.nonce), order


def test_ledger_random_operations_preserve_invariants(
    harness_factory, user_factory, insurance
) -> None:
    run_state_machine_as_test(
        lambda: LedgerMachine(harness_factory, user_factory, insurance),
        settings=settings(
            max_examples=80,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
