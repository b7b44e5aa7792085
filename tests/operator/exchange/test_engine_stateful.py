"""Random order flow and price paths through the engine (hypothesis state machine).

After every step: the ledger's invariants hold (no negative collateral, conservation, sizes sum to
zero per market, the root matches a rebuild); the book is not crossed; no order leaf has filled
beyond its size; and a price update (with its liquidations) changes no account's position or
collateral except the liquidated accounts, the makers and counterparties of their liquidation
fills, and the insurance account.
"""

import contextlib

from exchange_fixtures import USDC, make_desk
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from isoperp.errors import TransitionRejected
from isoperp.protocol.constants import INSURANCE_ACCOUNT

ACCOUNTS = 5


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.desk = make_desk(accounts=ACCOUNTS, margin=300 * USDC)  # ~20x: crashes liquidate
        self.mark = 600_000

    @rule(
        who=st.integers(0, ACCOUNTS - 1),
        is_buy=st.booleans(),
        offset=st.integers(-30, 30),
        size=st.sampled_from([100, 500, 1_000, 2_500, 5_000]),
        tif=st.sampled_from([0, 0, 1, 2]),
        flags=st.sampled_from([0, 0, 1, 2]),
    )
    def order(self, who, is_buy, offset, size, tif, flags):
        # Rejections are the engine's job; the invariants check that nothing changed wrongly.
        with contextlib.suppress(TransitionRejected):
            self.desk.submit(who, is_buy, self.mark + offset * 100, size, tif=tif, flags=flags)

    @rule(who=st.integers(0, ACCOUNTS - 1))
    def margin(self, who):
        """Re-margin an account whose position closed (its margin went back to collateral)."""
        if self.desk.ledger.position(who, 0) is None:
            self.desk.margin(who, 300 * USDC)

    @rule(move_ppm=st.sampled_from([-150_000, -80_000, -40_000, -10_000, 0, 20_000, 60_000]))
    def price(self, move_ppm):
        ledger = self.desk.ledger
        before = {(a.account_id): a.collateral for a in ledger.accounts()}
        positions = {(p.account_id, p.market_id): p for p in ledger.positions()}
        self.desk.engine.now += 1
        self.mark = max(1_000, self.mark * (1_000_000 + move_ppm) // 1_000_000)
        report = self.desk.price(self.mark)
        event(
            f"liquidated={bool(report.liquidated)} backstop={bool(report.backstopped)} "
            f"deleverage={bool(report.deleveraged)}"
        )
        involved = {INSURANCE_ACCOUNT}
        for r in report.liquidated:
            involved |= {r.account_id, r.maker_id}
        for r in report.backstopped:
            involved.add(r.account_id)
        for r in report.deleveraged:
            involved |= {r.account_id, r.counterparty_id}
        for account in ledger.accounts():
            if account.account_id not in involved:
                assert account.collateral == before[account.account_id]
        for key, p in positions.items():
            if key[0] not in involved:
                assert ledger.position(*key) == p, "a liquidation touched a bystander"

    @invariant()
    def ledger_invariants(self):
        self.desk.ledger.check_invariants()

    @invariant()
    def book_not_crossed_and_no_overfill(self):
        for book in self.desk.engine.books.values():
            book.check_invariants()
        for order in self.desk.ledger.orders():
            assert 0 <= order.filled <= order.size


TestEngineMachine = EngineMachine.TestCase
TestEngineMachine.settings = settings(
    max_examples=40,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
