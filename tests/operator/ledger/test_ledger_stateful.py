"""Random deposits, withdrawals, margin moves and fills against the ledger's invariants.

After every step: conservation (liabilities == deposits - withdrawals), per-market sizes sum to
zero, open interest == sum of longs, no empty position leaves, stored leaf bytes == encodings of the
model objects, and the incremental root == the root of a tree rebuilt from scratch. Every rejected
step must leave the root and every leaf byte unchanged.
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
from isoperp.ledger.ledger import rebuild_root
from isoperp.ledger.markets import BTC_USD, ETH_USD
from isoperp.ledger.transitions import Fill, MarginTransfer, Withdraw
from isoperp.protocol.constants import STATE_TREE_DEPTH
from isoperp.protocol.leaves import encode_leaf, index_of
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

users = st.integers(0, N_USERS - 1)
amounts = st.one_of(st.integers(0, 20_000_000_000), st.sampled_from([0, 1]))


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self, harness_factory: Callable[..., Any], user_factory: Callable[[int], Any]):
        super().__init__()
        self.h = harness_factory(MARKETS)
        self.users = [user_factory(i + 1) for i in range(N_USERS)]
        self.accepted_requests: list[Withdraw | MarginTransfer] = []
        self.rejections: dict[str, int] = {}

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
        return result

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
            self.accepted_requests.append(t)

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

    @rule(
        market=st.integers(0, len(MARKETS) - 1),
        maker=users,
        taker=users,
        taker_is_buy=st.booleans(),
        lots=st.integers(0, 3_000) | st.integers(0, 40_000),
        permille=st.integers(-20, 20) | st.integers(-100, 100),
    )
    def fill(
        self, market: int, maker: int, taker: int, taker_is_buy: bool, lots: int, permille: int
    ) -> None:
        m = self.h.ledger.market(market)
        price = m.mark_price * (1000 + permille) // 1000 // m.price_tick * m.price_tick
        size = lots // m.size_step * m.size_step
        maker_id, taker_id = self.users[maker].account_id, self.users[taker].account_id
        if maker_id < 0 or taker_id < 0:
            return
        self._apply(Fill(market, maker_id, taker_id, taker_is_buy, size, price, 0))

    @rule(
        data=st.data(),
        halves=st.integers(1, 4),
        as_taker=st.booleans(),
        permille=st.integers(-20, 20),
    )
    def reduce_or_flip(
        self, data: st.DataObject, halves: int, as_taker: bool, permille: int
    ) -> None:
        """An open position trades against its side: half-close, close, or flip (x1.5, x2)."""
        open_positions = [p for p in self.h.ledger.positions() if p.size != 0]
        if not open_positions:
            return
        pos = data.draw(st.sampled_from(open_positions))
        others = [u for u in self.users if u.account_id not in (-1, pos.account_id)]
        other = data.draw(st.sampled_from(others))
        m = self.h.ledger.market(pos.market_id)
        size = abs(pos.size) * halves // 2 // m.size_step * m.size_step
        price = m.mark_price * (1000 + permille) // 1000 // m.price_tick * m.price_tick
        sells = pos.size > 0
        maker, taker = (other.account_id, pos.account_id)
        if not as_taker:
            maker, taker = taker, maker
        taker_is_buy = not sells if as_taker else sells
        self._apply(Fill(pos.market_id, maker, taker, taker_is_buy, size, price, 0))

    @rule(data=st.data())
    def empty_flat_position(self, data: st.DataObject) -> None:
        """Moves all margin out of a flat position, which deletes its leaf."""
        flat = [p for p in self.h.ledger.positions() if p.size == 0 and p.quote > 0]
        if not flat:
            return
        pos = data.draw(st.sampled_from(flat))
        owner = next(u for u in self.users if u.account_id == pos.account_id)
        t = self.h.margin_tx(owner, pos.market_id, -pos.quote)
        result = self._apply(t)
        assert result is not None and result.position is None
        assert self.h.ledger.position(pos.account_id, pos.market_id) is None
        self.accepted_requests.append(t)

    @rule(data=st.data())
    def replay_request(self, data: st.DataObject) -> None:
        if not self.accepted_requests:
            return
        t = data.draw(st.sampled_from(self.accepted_requests))
        before = self.h.snapshot()
        try:
            self.h.ledger.apply(t)
        except TransitionRejected as exc:
            assert exc.reason == "bad_nonce"
        else:
            raise AssertionError("a replayed request was accepted")
        self.h.assert_unchanged(before)

    @invariant()
    def invariants_hold(self) -> None:
        ledger = self.h.ledger
        ledger.check_invariants(self.h.net_deposits)
        assert ledger.total_liabilities() == self.h.net_deposits
        models = [*ledger.accounts(), *ledger.positions(), *ledger.markets, ledger.exchange]
        stored = dict(ledger.leaves())
        assert stored == {index_of(leaf): encode_leaf(leaf) for leaf in models}
        rebuilt = SparseMerkleTree(
            STATE_TREE_DEPTH, ((i, hash_leaf(data)) for i, data in stored.items())
        )
        assert rebuilt.root == ledger.state_root == rebuild_root(models)
        for account in ledger.accounts():
            assert account.collateral >= 0
            assert ledger.account_id_of(account.owner) == account.account_id


def test_ledger_random_operations_preserve_invariants(harness_factory, user_factory) -> None:
    run_state_machine_as_test(
        lambda: LedgerMachine(harness_factory, user_factory),
        settings=settings(
            max_examples=60,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
