"""The global withdrawals tree in the exchange leaf (v2), DEPOSIT_REJECTED and FEE_COLLECT: every
rule and every rejection reason."""

import dataclasses

import pytest

from isoperp.errors import ConfigError, InvariantViolation, ProtocolError
from isoperp.ledger.ledger import AppliedDepositRejected, AppliedFeeCollect, Ledger
from isoperp.ledger.markets import DEVNET_MARKETS, DEVNET_OPERATOR
from isoperp.ledger.model import EMPTY_WITHDRAWALS_ROOT, WITHDRAWALS_CAPACITY
from isoperp.ledger.transitions import Deposit, DepositRejected, FeeCollect
from isoperp.protocol.constants import (
    INSURANCE_ACCOUNT,
    SYSTEM_WITHDRAWAL_ACCOUNT,
    UINT128_MAX,
    WITHDRAWAL_TREE_DEPTH,
    ZERO_ADDRESS,
)
from isoperp.protocol.header import WithdrawalLeaf
from isoperp.protocol.leaves import EXCHANGE_INDEX, account_index
from isoperp.tree.merkle import SparseMerkleTree, verify_proof


def _accounts_full(h) -> None:
    """Puts the account counter at the insurance id (only reachable after 2^24 - 1 accounts)."""
    full = dataclasses.replace(h.ledger.exchange, next_account_id=INSURANCE_ACCOUNT)
    h.ledger._put_exchange(full)


def _fees(h, new_user) -> int:
    """Trades once so the fee balance is > 0; returns it."""
    a = h.funded(5_000_000_000, 2_000_000_000)
    b = h.funded(5_000_000_000, 2_000_000_000)
    h.fill(a, b, 1_000, 600_000)
    assert h.ledger.exchange.fee_balance > 0
    return h.ledger.exchange.fee_balance


def _tree_of(leaves: list[WithdrawalLeaf]) -> SparseMerkleTree:
    return SparseMerkleTree(WITHDRAWAL_TREE_DEPTH, enumerate(w.leaf_hash for w in leaves))


# -- the global withdrawals tree -------------------------------------------------------------------


def test_genesis_withdrawals_tree_is_empty(h) -> None:
    ex = h.ledger.exchange
    assert ex.withdrawals_root == EMPTY_WITHDRAWALS_ROOT == _tree_of([]).root
    assert (ex.withdrawal_count, ex.withdrawal_total) == (0, 0)


def test_withdrawals_append_in_order_and_root_matches_rebuilt_tree(h, new_user) -> None:
    alice, bob = h.funded(10_000_000), h.funded(10_000_000)
    h.withdraw(alice, 1)
    h.withdraw(bob, 2)
    h.withdraw(alice, 3)
    leaves = h.ledger.withdrawals()
    assert [(w.account_id, w.amount) for w in leaves] == [(0, 1), (1, 2), (0, 3)]
    ex = h.ledger.exchange
    assert (ex.withdrawal_count, ex.withdrawal_total) == (3, 6)
    assert ex.withdrawals_root == _tree_of(leaves).root
    # the tree as it was at count 2 proves leaf 1 against that earlier root only
    earlier = h.ledger.withdrawals_tree(2)
    assert earlier.root == _tree_of(leaves[:2]).root
    proof = earlier.proof(1)
    assert verify_proof(earlier.root, leaves[1].leaf_hash, 1, proof, WITHDRAWAL_TREE_DEPTH)
    h.ledger.check_invariants(h.net_deposits)


def test_withdrawals_tree_beyond_count_raises(h) -> None:
    with pytest.raises(ProtocolError, match="never had"):
        h.ledger.withdrawals_tree(1)


def test_copy_has_its_own_withdrawals_tree(h, new_user) -> None:
    alice = h.funded(10_000_000)
    other = h.ledger.copy()
    other.apply(h.withdraw_tx(alice, 5))
    assert h.ledger.withdrawals() == [] and len(other.withdrawals()) == 1
    assert h.ledger.exchange.withdrawals_root == EMPTY_WITHDRAWALS_ROOT
    assert other.exchange.withdrawals_root == _tree_of(other.withdrawals()).root


def test_withdraw_full_tree_rejects_overflow(h, new_user) -> None:
    alice = h.funded(10_000_000)
    full = dataclasses.replace(h.ledger.exchange, withdrawal_count=WITHDRAWALS_CAPACITY)
    h.ledger._put_exchange(full)
    h.reject(h.withdraw_tx(alice, 5), "overflow")


def test_withdraw_total_beyond_uint128_rejects_overflow(h, new_user) -> None:
    alice = h.funded(10_000_000)
    h.ledger._put_exchange(dataclasses.replace(h.ledger.exchange, withdrawal_total=UINT128_MAX))
    h.reject(h.withdraw_tx(alice, 1), "overflow")


# -- DEPOSIT_REJECTED ------------------------------------------------------------------------------


def test_deposit_rejected_accounts_full_refunds_through_the_tree(h, new_user) -> None:
    _accounts_full(h)
    user = new_user()
    t = DepositRejected(0, INSURANCE_ACCOUNT, user.address, 7_000_000, 5)
    h.reject(Deposit(*dataclasses.astuple(t)), "accounts_full")  # never a DEPOSIT
    result = h.ledger.apply(t)
    assert result == AppliedDepositRejected(
        0, INSURANCE_ACCOUNT, user.address, 7_000_000, "accounts_full", 0, (EXCHANGE_INDEX,)
    )
    leaf = WithdrawalLeaf(SYSTEM_WITHDRAWAL_ACCOUNT, user.address, 7_000_000)
    assert h.ledger.withdrawals() == [leaf]
    ex = h.ledger.exchange
    assert (ex.deposit_cursor, ex.next_account_id) == (1, INSURANCE_ACCOUNT)
    assert (ex.withdrawal_count, ex.withdrawal_total) == (1, 7_000_000)
    assert ex.withdrawals_root == _tree_of([leaf]).root
    assert h.ledger.account_id_of(user.address) is None  # no account was created


def test_deposit_rejected_collateral_overflow_refunds(h, new_user) -> None:
    alice = new_user()
    h.deposit(alice, UINT128_MAX - 5)
    h.reject(Deposit(1, 0, alice.address, 6, 0), "collateral_overflow")  # never a DEPOSIT
    result = h.ledger.apply(DepositRejected(1, 0, alice.address, 6, 0))
    assert result.reason == "collateral_overflow" and result.withdrawal_index == 0
    assert result.touched == (EXCHANGE_INDEX, account_index(0))
    assert h.ledger.account(0).collateral == UINT128_MAX - 5  # unchanged
    assert h.ledger.withdrawals() == [WithdrawalLeaf(SYSTEM_WITHDRAWAL_ACCOUNT, alice.address, 6)]
    assert h.ledger.exchange.deposit_cursor == 2


def test_deposit_rejected_for_a_new_owner_with_ids_left_rejects_deposit_creditable(
    h, new_user
) -> None:
    h.reject(DepositRejected(0, 0, new_user().address, 5, 0), "deposit_creditable")


def test_deposit_rejected_for_an_account_with_room_rejects_deposit_creditable(
    h, new_user
) -> None:
    alice = new_user()
    h.deposit(alice, UINT128_MAX - 5)
    h.reject(DepositRejected(1, 0, alice.address, 5, 0), "deposit_creditable")  # exactly fits


def test_deposit_rejected_out_of_order_rejects(h, new_user) -> None:
    _accounts_full(h)
    h.reject(
        DepositRejected(1, INSURANCE_ACCOUNT, new_user().address, 5, 0), "deposit_out_of_order"
    )


def test_deposit_rejected_zero_amount_rejects_bad_amount(h, new_user) -> None:
    _accounts_full(h)
    h.reject(DepositRejected(0, INSURANCE_ACCOUNT, new_user().address, 0, 0), "bad_amount")


def test_deposit_rejected_for_zero_address_rejects_insurance_account(h) -> None:
    h.reject(DepositRejected(0, INSURANCE_ACCOUNT, ZERO_ADDRESS, 5, 0), "insurance_account")


def test_deposit_rejected_wrong_account_id_rejects_bad_account_id(h, new_user) -> None:
    alice = new_user()
    h.deposit(alice, UINT128_MAX)
    h.reject(DepositRejected(1, 3, alice.address, 5, 0), "bad_account_id")
    _accounts_full(h)
    h.reject(DepositRejected(1, 0, new_user().address, 5, 0), "bad_account_id")


@pytest.mark.parametrize(
    ("field", "value"),
    [("deposit_index", -1), ("account_id", 1 << 32), ("owner", "0x12"), ("amount", 1 << 128),
     ("timestamp", 1 << 64)],
)
def test_deposit_rejected_malformed_field_rejects(h, new_user, field, value) -> None:
    _accounts_full(h)
    t = DepositRejected(0, INSURANCE_ACCOUNT, new_user().address, 5, 0)
    h.reject(dataclasses.replace(t, **{field: value}), "malformed")


def test_deposit_rejected_with_a_full_tree_rejects_overflow(h, new_user) -> None:
    _accounts_full(h)
    h.ledger._put_exchange(
        dataclasses.replace(h.ledger.exchange, withdrawal_count=WITHDRAWALS_CAPACITY)
    )
    h.reject(DepositRejected(0, INSURANCE_ACCOUNT, new_user().address, 5, 0), "overflow")


# -- FEE_COLLECT -----------------------------------------------------------------------------------


def test_fee_collect_splits_20_percent_to_insurance(h, new_user) -> None:
    fees = _fees(h, new_user)
    fund = h.ledger.exchange.insurance_fund
    amount = fees - 1  # leaves 1 behind
    result = h.ledger.apply(FeeCollect(amount))
    to_insurance = amount * 200_000 // 1_000_000
    assert result == AppliedFeeCollect(
        amount,
        to_insurance,
        amount - to_insurance,
        DEVNET_OPERATOR,
        1,
        fund + to_insurance,
        0,
        (EXCHANGE_INDEX,),
    )
    ex = h.ledger.exchange
    assert (ex.fee_balance, ex.insurance_fund) == (1, fund + to_insurance)
    assert h.ledger.withdrawals() == [
        WithdrawalLeaf(SYSTEM_WITHDRAWAL_ACCOUNT, DEVNET_OPERATOR, amount - to_insurance)
    ]
    assert ex.withdrawal_total == amount - to_insurance
    h.ledger.check_invariants(h.net_deposits - ex.withdrawal_total)


def test_fee_collect_rounds_the_insurance_share_down(h, new_user) -> None:
    _fees(h, new_user)
    result = h.ledger.apply(FeeCollect(4))  # 20% of 4 = 0.8 -> 0
    assert (result.to_insurance, result.paid) == (0, 4)
    result = h.ledger.apply(FeeCollect(5))
    assert (result.to_insurance, result.paid, result.withdrawal_index) == (1, 4, 1)


def test_fee_collect_zero_rejects_bad_amount(h, new_user) -> None:
    _fees(h, new_user)
    h.reject(FeeCollect(0), "bad_amount")


def test_fee_collect_beyond_the_balance_rejects_insufficient_fees(h, new_user) -> None:
    fees = _fees(h, new_user)
    h.reject(FeeCollect(fees + 1), "insufficient_fees")
    h.ledger.apply(FeeCollect(fees))  # the whole balance is fine
    assert h.ledger.exchange.fee_balance == 0
    h.reject(FeeCollect(1), "insufficient_fees")


def test_fee_collect_malformed_amount_rejects(h) -> None:
    h.reject(FeeCollect(1 << 128), "malformed")
    h.reject(FeeCollect(-1), "malformed")


def test_fee_collect_insurance_fund_overflow_rejects(h, new_user) -> None:
    fees = _fees(h, new_user)
    top = (1 << 127) - 1
    h.ledger._put_exchange(dataclasses.replace(h.ledger.exchange, insurance_fund=top))
    h.reject(FeeCollect(fees), "overflow")


def test_fee_recipient_must_be_an_address(domain, oracle) -> None:
    with pytest.raises(ConfigError):
        Ledger.genesis(DEVNET_MARKETS, domain, oracle, fee_recipient=ZERO_ADDRESS)
    with pytest.raises(ConfigError):
        Ledger.genesis(DEVNET_MARKETS, domain, oracle, fee_recipient="0x12")


def test_conservation_counts_refunds_and_collected_fees(h, new_user) -> None:
    """deposits taken off the queue (credited or refunded) - exchange.withdrawal_total =
    liabilities + pending funding + dust."""
    fees = _fees(h, new_user)
    alice = new_user()
    h.deposit(alice, UINT128_MAX - 50)
    h.ledger.apply(FeeCollect(fees))
    refund = 100
    cursor = h.ledger.exchange.deposit_cursor
    h.ledger.apply(DepositRejected(cursor, alice.account_id, alice.address, refund, 0))
    deposits = h.net_deposits + refund
    net = deposits - h.ledger.exchange.withdrawal_total
    h.ledger.check_invariants(net, max_funding_dust=0)  # no funding: exact
    for off_by_one in (net - 1, net + 1):
        with pytest.raises(InvariantViolation, match="conservation"):
            h.ledger.check_invariants(off_by_one, max_funding_dust=0)
