"""Forced requests from the L1 queue: FORCED_WITHDRAW (0x10) and FORCED_EXIT (0x11).

Served strictly in queue order (``forced_out_of_order`` otherwise); a request that cannot be
executed (unknown account or market, a requester who is not the owner, no position, amount 0,
nothing to withdraw) is served as a no-op: only the exchange leaf's forced cursor changes. An exit
settles funding and hands the position to the insurance account at the mark, paying the owner
``max(0, equity)``.

Devnet BTC-USD numbers as in test_ledger_liquidations: M sells 10,000 lots at 600,000 to L (1,000
USDC margin), L quote = -5,003,000,000, equity(m) = 10,000 m - 5,003,000,000.
"""

from __future__ import annotations

import dataclasses

import pytest

from isoperp.ledger.ledger import AppliedForcedExit, AppliedForcedWithdraw
from isoperp.ledger.model import Position
from isoperp.ledger.transitions import (
    Backstop,
    ForcedExit,
    ForcedWithdraw,
    Funding,
    forced_request,
)
from isoperp.protocol.constants import INSURANCE_ACCOUNT, MAX_ACCOUNTS, ZERO_ADDRESS
from isoperp.protocol.header import WithdrawalLeaf
from isoperp.protocol.leaves import (
    EXCHANGE_INDEX,
    account_index,
    decode_leaf,
    encode_exchange,
    market_index,
    position_index,
)

L_QUOTE = -5_003_000_000
M_QUOTE = 50_000_000_000 + 6_000_000_000 - 600_000


def _scenario(h):
    """M short 10,000 and L long 10,000 at 600,000 in BTC-USD."""
    m = h.funded(100_000_000_000, 50_000_000_000)
    l_ = h.funded(1_000_000_000, 1_000_000_000)
    h.fill(m, l_, 10_000, 600_000)
    return m, l_


def _withdraw(h, user, amount, *, requester=None, account_id=None, index=None):
    return ForcedWithdraw(
        h.ledger.exchange.forced_cursor if index is None else index,
        user.account_id if account_id is None else account_id,
        user.address if requester is None else requester,
        amount,
        1_700_000_000,
    )


def _exit(h, user, market_id=0, *, requester=None, account_id=None, index=None):
    return ForcedExit(
        h.ledger.exchange.forced_cursor if index is None else index,
        user.account_id if account_id is None else account_id,
        market_id,
        user.address if requester is None else requester,
        1_700_000_000,
    )


def _apply(h, t):
    """Applies ``t`` after checking that ``validate`` predicts the same result."""
    preview = h.ledger.validate(t)
    result = h.ledger.apply(t)
    assert preview == result
    return result


def _served_as_noop(h, t, reason):
    """``t`` is accepted, changes nothing but the forced cursor, and says ``reason``."""
    before = dict(h.ledger.leaves())
    cursor = h.ledger.exchange.forced_cursor
    result = _apply(h, t)
    assert (result.noop, result.paid) == (reason, 0)
    after = dict(h.ledger.leaves())
    assert h.ledger.exchange == dataclasses.replace(
        _exchange_of(before), forced_cursor=cursor + 1
    )
    del before[EXCHANGE_INDEX], after[EXCHANGE_INDEX]
    assert after == before
    h.ledger.check_invariants(h.net_deposits)
    return result


def _exchange_of(leaves):
    return decode_leaf(leaves[EXCHANGE_INDEX])


# -- the queue entry -------------------------------------------------------------------------------


def test_forced_request_builds_the_transition_of_a_queue_entry() -> None:
    who = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    assert forced_request(4, 1, who, 7, 0, 5_000, 99) == ForcedWithdraw(4, 7, who, 5_000, 99)
    assert forced_request(5, 2, who, 7, 3, 0, 99) == ForcedExit(5, 7, 3, who, 99)
    for bad in ((4, 1, who, 7, 1, 5, 99), (5, 2, who, 7, 3, 1, 99), (6, 3, who, 7, 0, 0, 99)):
        with pytest.raises(ValueError):
            forced_request(*bad)


# -- FORCED_WITHDRAW -------------------------------------------------------------------------------


def test_forced_withdraw_pays_the_requested_amount(h, new_user) -> None:
    alice = new_user()
    h.deposit(alice, 10_000_000)
    r = _apply(h, _withdraw(h, alice, 2_500_000))
    assert r == AppliedForcedWithdraw(
        0, 0, alice.address, 2_500_000, 2_500_000, 7_500_000, None,
        (EXCHANGE_INDEX, account_index(0)), 0,
    )
    assert h.ledger.withdrawals() == [WithdrawalLeaf(0, alice.address, 2_500_000)]
    account = h.ledger.account(0)
    assert (account.collateral, account.nonce) == (7_500_000, 0)  # the nonce counts signed ones
    assert h.ledger.exchange.forced_cursor == 1
    h.net_deposits -= r.paid
    h.ledger.check_invariants(h.net_deposits)


def test_forced_withdraw_caps_at_free_collateral(h, new_user) -> None:
    """Margin in a position is not free collateral: a forced exit gets it out."""
    alice = new_user()
    h.deposit(alice, 10_000_000)
    h.margin(alice, 0, 4_000_000)
    r = _apply(h, _withdraw(h, alice, (1 << 128) - 1))
    assert (r.requested, r.paid, r.collateral, r.noop) == ((1 << 128) - 1, 6_000_000, 0, None)
    assert h.ledger.position(alice.account_id, 0).quote == 4_000_000
    h.net_deposits -= r.paid
    h.ledger.check_invariants(h.net_deposits)


def test_forced_withdraw_requester_case_does_not_matter(h, new_user) -> None:
    alice = new_user()
    h.deposit(alice, 10_000_000)
    r = _apply(h, _withdraw(h, alice, 1, requester=alice.address.lower()))
    assert (r.paid, r.requester) == (1, alice.address)


def test_forced_withdraw_noops(h, new_user) -> None:
    alice, mallory = new_user(), new_user()
    h.deposit(alice, 10_000_000)
    h.deposit(mallory, 10_000_000)
    r = _served_as_noop(h, _withdraw(h, alice, 1, requester=mallory.address), "not_owner")
    assert r.touched == (EXCHANGE_INDEX, account_index(alice.account_id))
    assert r.collateral == 10_000_000
    r = _served_as_noop(h, _withdraw(h, alice, 1, account_id=2), "unknown_account")
    assert (r.touched, r.collateral) == ((EXCHANGE_INDEX, account_index(2)), None)
    r = _served_as_noop(h, _withdraw(h, alice, 1, account_id=MAX_ACCOUNTS), "unknown_account")
    assert r.touched == (EXCHANGE_INDEX,)  # no leaf slot for an id beyond the layout
    _served_as_noop(h, _withdraw(h, alice, 1, account_id=(1 << 32) - 1), "unknown_account")
    _served_as_noop(h, _withdraw(h, alice, 0), "bad_amount")
    r = _served_as_noop(
        h, _withdraw(h, alice, 1, account_id=INSURANCE_ACCOUNT, requester=ZERO_ADDRESS),
        "insurance_account",
    )
    assert r.touched == (EXCHANGE_INDEX, account_index(INSURANCE_ACCOUNT))
    _served_as_noop(
        h, _withdraw(h, alice, 1, account_id=INSURANCE_ACCOUNT), "insurance_account"
    )
    h.withdraw(alice, 10_000_000)
    _served_as_noop(h, _withdraw(h, alice, 5), "nothing_to_withdraw")
    assert h.ledger.exchange.forced_cursor == 8


def test_forced_withdraw_out_of_order_rejects(h, new_user) -> None:
    alice = new_user()
    h.deposit(alice, 10_000_000)
    h.reject(_withdraw(h, alice, 1, index=1), "forced_out_of_order")
    served = _withdraw(h, alice, 1)
    _apply(h, served)
    h.reject(served, "forced_out_of_order")  # each entry is served exactly once
    h.reject(_withdraw(h, alice, 1, index=0), "forced_out_of_order")
    h.reject(_exit(h, alice, index=2), "forced_out_of_order")


@pytest.mark.parametrize(
    "change",
    [
        {"forced_index": -1},
        {"forced_index": 1 << 64},
        {"account_id": 1 << 32},
        {"account_id": True},
        {"requester": "0x1234"},
        {"requester": None},
        {"amount": 1 << 128},
        {"amount": -1},
        {"timestamp": -1},
    ],
)
def test_forced_withdraw_malformed_rejects(h, new_user, change) -> None:
    alice = new_user()
    h.deposit(alice, 10_000_000)
    h.reject(dataclasses.replace(_withdraw(h, alice, 1), **change), "malformed")


def test_forced_withdraw_out_of_order_before_noop(h, new_user) -> None:
    """Order is checked before executability: a no-op must still be the next entry."""
    alice = new_user()
    h.reject(_withdraw(h, alice, 1, account_id=3, index=5), "forced_out_of_order")


# -- FORCED_EXIT -----------------------------------------------------------------------------------


def test_forced_exit_closes_at_the_mark_and_pays_equity(h) -> None:
    m, l_ = _scenario(h)
    h.set_price(610_000, 100)
    r = _apply(h, _exit(h, l_))
    paid = 10_000 * 610_000 + L_QUOTE
    taken = Position(INSURANCE_ACCOUNT, 0, 10_000, -6_100_000_000, 6_000_000_000, 0)
    assert r == AppliedForcedExit(
        0, l_.account_id, 0, l_.address, paid, 10_000, L_QUOTE, paid, 610_000, 0, 0, taken,
        0, 10_000, None,
        (
            EXCHANGE_INDEX,
            account_index(l_.account_id),
            market_index(0),
            position_index(l_.account_id, 0),
            position_index(INSURANCE_ACCOUNT, 0),
        ),
        0,
    )
    assert h.ledger.withdrawals() == [WithdrawalLeaf(l_.account_id, l_.address, paid)]
    assert h.ledger.exchange.withdrawal_total == paid
    assert h.ledger.position(l_.account_id, 0) is None
    assert h.ledger.position(INSURANCE_ACCOUNT, 0) == taken
    assert h.ledger.account(l_.account_id).collateral == 0  # paid out, not credited
    assert h.ledger.insurance_equity() == 0  # bought exactly at the mark
    assert h.ledger.market(0).open_interest == 10_000
    assert h.ledger.position(m.account_id, 0).size == -10_000
    h.net_deposits -= paid
    h.ledger.check_invariants(h.net_deposits)


def test_forced_exit_of_a_short(h) -> None:
    m, _l = _scenario(h)
    h.set_price(590_000, 100)
    r = _apply(h, _exit(h, m))
    assert r.paid == M_QUOTE - 10_000 * 590_000
    assert h.ledger.position(INSURANCE_ACCOUNT, 0) == Position(
        INSURANCE_ACCOUNT, 0, -10_000, 5_900_000_000, -6_000_000_000, 0
    )
    assert h.ledger.market(0).open_interest == 10_000  # L's long
    h.net_deposits -= r.paid
    h.ledger.check_invariants(h.net_deposits)


def test_forced_exit_of_a_bad_debt_position_pays_nothing(h) -> None:
    """Equity < 0 at the mark: the owner gets 0 and the insurance account absorbs the whole
    position, its negative quote included (as in BACKSTOP, but without a solvency check)."""
    _m, l_ = _scenario(h)
    h.set_price(490_000, 100)  # L: equity -103,000,000
    r = _apply(h, _exit(h, l_))
    assert (r.paid, r.equity, r.noop) == (0, -103_000_000, None)
    assert r.insurance_position == Position(
        INSURANCE_ACCOUNT, 0, 10_000, L_QUOTE, 6_000_000_000, 0
    )
    assert h.ledger.insurance_equity() == -103_000_000  # the fund is insolvent: still served
    h.ledger.check_invariants(h.net_deposits)


def test_forced_exit_settles_funding_first(h) -> None:
    m, l_ = _scenario(h)
    h.set_price(600_000, 100)
    h.ledger.apply(Funding(0, 0, 100))
    h.set_price(600_000, 3_700)
    h.ledger.apply(Funding(0, 8_000, 3_700))  # index + 600,000,000: longs pay shorts
    # L pays floor(-600,000,000 * 10,000 / 1e6) = -6,000,000
    r = _apply(h, _exit(h, l_))
    assert r.funding == -6_000_000
    assert r.quote == L_QUOTE - 6_000_000
    assert r.paid == L_QUOTE - 6_000_000 + 6_000_000_000
    assert r.insurance_position.funding_index == 600_000_000
    h.net_deposits -= r.paid
    h.ledger.check_invariants(h.net_deposits)
    # the insurance long now exists with the index caught up; M's exit settles M (receives
    # 6,000,000) and the insurance position (nothing pending) and nets it flat
    r = _apply(h, _exit(h, m))
    assert (r.funding, r.insurance_funding, r.insurance_position) == (6_000_000, 0, None)
    h.net_deposits -= r.paid
    h.ledger.check_invariants(h.net_deposits)


def test_forced_exit_insurance_funding_is_settled(h) -> None:
    _m, l_ = _scenario(h)
    h.set_price(510_000, 100)
    h.ledger.apply(Backstop(0, l_.account_id, 100))  # insurance long 10,000 at index 0
    h.ledger.apply(Funding(0, 0, 100))
    h.set_price(510_000, 3_700)
    h.ledger.apply(Funding(0, -8_000, 3_700))  # index -510,000,000: shorts pay longs
    s = h.funded(300_000_000, 300_000_000)
    b = h.funded(100_000_000_000, 50_000_000_000)
    h.fill(b, s, 5_000, 510_000, taker_is_buy=False)  # S short 5,000
    r = _apply(h, _exit(h, s))
    assert r.insurance_funding == 5_100_000  # floor(510,000,000 * 10,000 / 1e6)
    assert r.insurance_position.size == 5_000
    assert r.insurance_position.funding_index == -510_000_000
    h.net_deposits -= r.paid
    h.ledger.check_invariants(h.net_deposits)


def test_forced_exit_netting_flat_moves_quote_to_the_fund(h) -> None:
    m, l_ = _scenario(h)
    h.set_price(610_000, 100)
    paid_l = _apply(h, _exit(h, l_)).paid
    h.set_price(620_000, 200)
    r = _apply(h, _exit(h, m))
    # the insurance long (quote -6,100,000,000) nets against M's short taken at 620,000
    # (quote +6,200,000,000): flat, +100,000,000 to the fund
    assert (r.insurance_position, r.insurance_fund, r.open_interest) == (None, 100_000_000, 0)
    assert h.ledger.position(INSURANCE_ACCOUNT, 0) is None
    assert list(h.ledger.positions()) == []
    h.net_deposits -= paid_l + r.paid
    h.ledger.check_invariants(h.net_deposits)


def test_forced_exit_partial_netting_shrinks_basis_like_backstop(h) -> None:
    _m, l_ = _scenario(h)
    s = h.funded(200_000_000, 200_000_000)
    b = h.funded(100_000_000_000, 50_000_000_000)
    h.fill(b, s, 5_000, 600_000, taker_is_buy=False)  # S short 5,000: quote 3,198,500,000
    _apply(h, _exit(h, l_))  # insurance long 10,000, basis 6e9, quote -6e9 (mark 600,000)
    r = _apply(h, _exit(h, s))
    assert r.insurance_position == Position(
        INSURANCE_ACCOUNT, 0, 5_000, -6_000_000_000 + 3_000_000_000, 3_000_000_000, 0
    )


def test_forced_exit_of_a_flat_position_pays_its_margin(h, new_user) -> None:
    alice = new_user()
    h.deposit(alice, 10_000_000)
    h.margin(alice, 1, 4_000_000)
    r = _apply(h, _exit(h, alice, 1))
    assert (r.paid, r.size, r.insurance_position, r.noop) == (4_000_000, 0, None, None)
    assert position_index(INSURANCE_ACCOUNT, 1) not in r.touched
    assert h.ledger.position(alice.account_id, 1) is None
    assert h.ledger.account(alice.account_id).collateral == 6_000_000
    h.net_deposits -= r.paid
    h.ledger.check_invariants(h.net_deposits)


def test_forced_exit_needs_no_fresh_mark(h) -> None:
    """A censored user gets out even when the operator stopped pushing prices: the exit uses the
    mark committed in the market leaf, however old (unlike LIQUIDATE / BACKSTOP)."""
    _m, l_ = _scenario(h)
    h.set_price(610_000, 100)
    r = _apply(h, dataclasses.replace(_exit(h, l_), timestamp=100 + 10**8))
    assert (r.mark_price, r.noop) == (610_000, None)


def test_forced_exit_noops(h, new_user) -> None:
    m, l_ = _scenario(h)
    mallory = h.funded(1_000_000, 0)
    r = _served_as_noop(h, _exit(h, l_, requester=mallory.address), "not_owner")
    assert r.touched == (EXCHANGE_INDEX, account_index(l_.account_id))
    _served_as_noop(h, _exit(h, l_, account_id=3), "unknown_account")
    _served_as_noop(h, _exit(h, l_, account_id=MAX_ACCOUNTS + 5), "unknown_account")
    _served_as_noop(
        h, _exit(h, l_, account_id=INSURANCE_ACCOUNT, requester=ZERO_ADDRESS), "insurance_account"
    )
    r = _served_as_noop(h, _exit(h, l_, 7), "unknown_market")
    assert r.touched == (EXCHANGE_INDEX, account_index(l_.account_id), market_index(7))
    r = _served_as_noop(h, _exit(h, l_, 64), "unknown_market")  # beyond the layout
    assert r.touched == (EXCHANGE_INDEX, account_index(l_.account_id))
    _served_as_noop(h, _exit(h, l_, (1 << 16) - 1), "unknown_market")
    r = _served_as_noop(h, _exit(h, l_, 1), "no_position")
    assert r.touched == (
        EXCHANGE_INDEX, account_index(l_.account_id), market_index(1),
        position_index(l_.account_id, 1),
    )
    _served_as_noop(h, _exit(h, mallory, 0), "no_position")
    _apply(h, _exit(h, m))  # M out; exiting again finds nothing
    _served_as_noop(h, _exit(h, m), "no_position")


@pytest.mark.parametrize(
    "change",
    [
        {"market_id": 1 << 16},
        {"market_id": -1},
        {"requester": "0x" + "zz" * 20},
        {"timestamp": 1 << 64},
        {"forced_index": None},
    ],
)
def test_forced_exit_malformed_rejects(h, change) -> None:
    _m, l_ = _scenario(h)
    h.reject(dataclasses.replace(_exit(h, l_), **change), "malformed")


def test_forced_exit_only_touches_the_account_and_the_insurance_account(h) -> None:
    m, l_ = _scenario(h)
    others = h.funded(5_000_000, 1_000_000)
    before = {i: d for i, d in h.ledger.leaves()}
    r = _apply(h, _exit(h, l_))
    after = dict(h.ledger.leaves())
    changed = {i for i in before.keys() | after.keys() if before.get(i) != after.get(i)}
    assert changed <= set(r.touched)
    assert account_index(others.account_id) not in changed
    assert position_index(m.account_id, 0) not in changed


def test_forced_cursor_is_in_the_exchange_leaf(h, new_user) -> None:
    alice = new_user()
    h.deposit(alice, 1_000_000)
    _apply(h, _withdraw(h, alice, 1))
    _apply(h, _exit(h, alice))
    assert h.ledger.exchange.forced_cursor == 2
    assert h.ledger.leaf_bytes(EXCHANGE_INDEX) == encode_exchange(h.ledger.exchange)
