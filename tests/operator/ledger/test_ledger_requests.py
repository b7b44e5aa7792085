"""Signed requests: Withdraw and MarginTransfer (signatures, nonces, balances, the IMR limit)."""

from __future__ import annotations

import dataclasses

import pytest

from isoperp.ledger.ledger import AppliedMarginTransfer, AppliedWithdraw, rebuild_root
from isoperp.ledger.markets import BTC_USD, ETH_USD
from isoperp.ledger.model import Account, Position
from isoperp.ledger.transitions import MarginTransfer, Withdraw
from isoperp.protocol.constants import STATE_TREE_DEPTH
from isoperp.protocol.header import WithdrawalLeaf
from isoperp.protocol.leaves import EXCHANGE_INDEX, account_index, market_index, position_index
from isoperp.protocol.signing import SECP256K1_N, Domain, request_digest, sign_digest
from isoperp.tree.merkle import EMPTY, verify_proof

# -- withdraw --------------------------------------------------------------------------------------


def test_withdraw_signed_by_owner_succeeds(h, new_user) -> None:
    alice, dest = new_user(), new_user()
    h.deposit(alice, 10_000_000)
    t = h.withdraw_tx(alice, 2_500_000, recipient=dest.address)
    result = h.ledger.apply(t)
    assert result == AppliedWithdraw(
        0, dest.address, 2_500_000, 7_500_000, (account_index(0), EXCHANGE_INDEX), 0
    )
    assert h.ledger.account(0) == Account(0, alice.address, 7_500_000, 1)
    # appended to the global withdrawals tree, committed by the exchange leaf
    leaf = WithdrawalLeaf(0, dest.address, 2_500_000)
    assert h.ledger.withdrawals() == [leaf]
    ex = h.ledger.exchange
    assert (ex.withdrawal_count, ex.withdrawal_total) == (1, 2_500_000)
    assert verify_proof(
        ex.withdrawals_root, leaf.leaf_hash, 0, h.ledger.withdrawals_tree().proof(0), 32
    )
    h.net_deposits -= 2_500_000
    h.ledger.check_invariants(h.net_deposits)


def test_withdraw_whole_balance_succeeds(h, new_user) -> None:
    alice = new_user()
    h.deposit(alice, 10_000_000)
    h.withdraw(alice, 10_000_000)
    assert h.ledger.account(0) == Account(0, alice.address, 0, 1)  # account leaves stay


def test_withdraw_replayed_rejects_bad_nonce(h, new_user) -> None:
    alice = new_user()
    h.deposit(alice, 10_000_000)
    t = h.withdraw_tx(alice, 1_000_000)
    h.ledger.apply(t)
    h.reject(t, "bad_nonce")


def test_withdraw_future_nonce_rejects(h, new_user) -> None:
    alice = new_user()
    h.deposit(alice, 10_000_000)
    h.reject(h.withdraw_tx(alice, 1, nonce=1), "bad_nonce")


def test_withdraw_to_zero_address_rejects(h, new_user) -> None:
    """A zero recipient can never be paid on L1 (tokens refuse it): the debit would be lost."""
    alice = new_user()
    h.deposit(alice, 10_000_000)
    h.reject(h.withdraw_tx(alice, 1_000_000, recipient="0x" + "00" * 20), "bad_recipient")


def test_withdraw_wrong_signer_rejects(h, new_user) -> None:
    alice, mallory = new_user(), new_user()
    h.deposit(alice, 10_000_000)
    h.deposit(mallory, 1)
    h.reject(h.withdraw_tx(alice, 1_000_000, key=mallory.key), "bad_signature")


def test_withdraw_high_s_malleated_signature_rejects(h, new_user) -> None:
    alice = new_user()
    h.deposit(alice, 10_000_000)
    t = h.withdraw_tx(alice, 1_000_000)
    r, s, v = t.signature[:32], int.from_bytes(t.signature[32:64], "big"), t.signature[64]
    # (r, n - s, v ^ 1) recovers the same key: the malleable twin EIP-2 forbids
    twin = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])
    h.reject(dataclasses.replace(t, signature=twin), "bad_signature")
    h.ledger.apply(t)  # the low-s original is fine


@pytest.mark.parametrize(
    "mangle",
    [
        lambda sig: sig[:64] + bytes([sig[64] - 27]),  # v = 0/1
        lambda sig: b"\x00" * 65,
        lambda sig: sig[:64] + bytes([55 - sig[64]]),  # other recovery id: another key
    ],
)
def test_withdraw_mangled_signature_rejects(h, new_user, mangle) -> None:
    alice = new_user()
    h.deposit(alice, 10_000_000)
    t = h.withdraw_tx(alice, 1_000_000)
    h.reject(dataclasses.replace(t, signature=mangle(t.signature)), "bad_signature")


@pytest.mark.parametrize("length", [0, 64, 66])
def test_withdraw_signature_not_65_bytes_is_malformed(h, new_user, length) -> None:
    # the record carries exactly 65 bytes (sig65): anything else cannot be in a batch
    alice = new_user()
    h.deposit(alice, 10_000_000)
    t = h.withdraw_tx(alice, 1_000_000)
    h.reject(dataclasses.replace(t, signature=(t.signature * 2)[:length]), "malformed")


def test_withdraw_tampered_fields_reject(h, new_user) -> None:
    alice, mallory = new_user(), new_user()
    h.deposit(alice, 10_000_000)
    t = h.withdraw_tx(alice, 1_000_000)
    h.reject(dataclasses.replace(t, amount=2_000_000), "bad_signature")
    h.reject(dataclasses.replace(t, recipient=mallory.address), "bad_signature")


def test_withdraw_other_domain_signature_rejects(h, new_user) -> None:
    alice = new_user()
    h.deposit(alice, 10_000_000)
    other = Domain(1, h.domain.verifying_contract)
    t = Withdraw(0, alice.address, 1, 0, b"")
    signed = dataclasses.replace(t, signature=sign_digest(alice.key, request_digest(other, t)))
    h.reject(signed, "bad_signature")


def test_withdraw_over_balance_rejects(h, new_user) -> None:
    alice = new_user()
    h.deposit(alice, 10_000_000)
    h.reject(h.withdraw_tx(alice, 10_000_001), "insufficient_collateral")


def test_withdraw_zero_rejects(h, new_user) -> None:
    alice = new_user()
    h.deposit(alice, 10_000_000)
    h.reject(h.withdraw_tx(alice, 0), "bad_amount")


def test_withdraw_unknown_account_rejects(h, new_user) -> None:
    alice = new_user()
    alice.account_id = 3
    h.reject(h.withdraw_tx(alice, 1), "unknown_account")


def test_withdraw_margin_is_not_free_collateral(h) -> None:
    alice = h.funded(10_000_000, 4_000_000)
    h.reject(h.withdraw_tx(alice, 6_000_001), "insufficient_collateral")
    h.withdraw(alice, 6_000_000)


@pytest.mark.parametrize(
    "change",
    [
        {"amount": -1},
        {"amount": 1 << 128},
        {"nonce": -1},
        {"recipient": "0x12"},
        {"account_id": 1 << 32},
        {"signature": "00" * 65},
    ],
)
def test_withdraw_malformed_fields_reject(h, new_user, change) -> None:
    alice = new_user()
    h.deposit(alice, 10)
    h.reject(
        dataclasses.replace(Withdraw(0, alice.address, 1, 0, b"\x00" * 65), **change), "malformed"
    )


# -- margin transfer in ----------------------------------------------------------------------------


def test_margin_in_creates_position_with_market_funding_index(harness_factory, new_user) -> None:
    h = harness_factory([dataclasses.replace(BTC_USD, funding_index=-777), ETH_USD])
    alice = new_user()
    h.deposit(alice, 10_000_000)
    result = h.margin(alice, 0, 4_000_000)
    expected = Position(0, 0, 0, 4_000_000, 0, -777)
    assert result == AppliedMarginTransfer(
        0,
        0,
        4_000_000,
        6_000_000,
        expected,
        (account_index(0), position_index(0, 0), market_index(0)),
    )
    assert h.ledger.position(0, 0) == expected
    assert h.ledger.account(0) == Account(0, alice.address, 6_000_000, 1)
    h.margin(alice, 0, 1_000_000)
    assert h.ledger.position(0, 0) == Position(0, 0, 0, 5_000_000, 0, -777)
    h.ledger.check_invariants(h.net_deposits)


def test_margin_in_whole_collateral_succeeds_one_more_rejects(h, new_user) -> None:
    alice = new_user()
    h.deposit(alice, 10_000_000)
    h.reject(h.margin_tx(alice, 1, 10_000_001), "insufficient_collateral")
    h.margin(alice, 1, 10_000_000)
    assert h.ledger.account(0).collateral == 0
    h.reject(h.margin_tx(alice, 0, 1), "insufficient_collateral")


def test_margin_unknown_market_rejects(h, new_user) -> None:
    alice = new_user()
    h.deposit(alice, 10_000_000)
    h.reject(h.margin_tx(alice, 2, 1), "unknown_market")
    h.reject(h.margin_tx(alice, 63, -1), "unknown_market")


def test_margin_zero_amount_rejects(h, new_user) -> None:
    alice = new_user()
    h.deposit(alice, 10_000_000)
    h.reject(h.margin_tx(alice, 0, 0), "bad_amount")


def test_margin_bad_signature_and_nonce_reject(h, new_user) -> None:
    alice, bob = new_user(), new_user()
    h.deposit(alice, 10_000_000)
    h.deposit(bob, 10_000_000)
    h.reject(h.margin_tx(alice, 0, 5, key=bob.key), "bad_signature")
    t = h.margin_tx(alice, 0, 5)
    h.reject(dataclasses.replace(t, amount=-5), "bad_signature")  # sign flipped after signing
    h.reject(dataclasses.replace(t, market_id=1), "bad_signature")
    h.ledger.apply(t)
    h.reject(t, "bad_nonce")


def test_margin_nonce_shared_with_withdrawals(h, new_user) -> None:
    alice = new_user()
    h.deposit(alice, 10_000_000)
    stale = h.withdraw_tx(alice, 1)  # nonce 0
    h.margin(alice, 0, 5)  # consumes nonce 0
    h.reject(stale, "bad_nonce")
    h.withdraw(alice, 1)  # nonce 1


@pytest.mark.parametrize("change", [{"amount": 1 << 127}, {"market_id": 1 << 16}, {"nonce": True}])
def test_margin_malformed_fields_reject(h, new_user, change) -> None:
    alice = new_user()
    h.deposit(alice, 10)
    t = MarginTransfer(0, 0, 1, 0, b"\x00" * 65)
    h.reject(dataclasses.replace(t, **change), "malformed")


# -- margin transfer out ---------------------------------------------------------------------------


def test_margin_out_of_flat_position_to_zero_deletes_it(h, new_user) -> None:
    alice = new_user()
    h.deposit(alice, 10_000_000)
    root_before = h.ledger.state_root
    h.margin(alice, 0, 4_000_000)
    h.margin(alice, 0, -1_000_000)
    assert h.ledger.position(0, 0) == Position(0, 0, 0, 3_000_000, 0, 0)
    result = h.margin(alice, 0, -3_000_000)
    assert result.position is None and result.collateral == 10_000_000
    assert h.ledger.position(0, 0) is None
    index = position_index(0, 0)
    assert h.ledger.leaf_bytes(index) is None
    root = h.ledger.state_root
    assert verify_proof(root, EMPTY, index, h.ledger.proof(index), STATE_TREE_DEPTH)
    models = [*h.ledger.accounts(), *h.ledger.markets, h.ledger.exchange]
    assert rebuild_root(models) == root
    # only the account's nonce differs from before the round trip
    assert h.ledger.account(0) == Account(0, alice.address, 10_000_000, 3)
    assert h.ledger.state_root != root_before
    h.ledger.check_invariants(h.net_deposits)


def test_margin_out_beyond_flat_quote_rejects(h, new_user) -> None:
    alice = new_user()
    h.deposit(alice, 10_000_000)
    h.margin(alice, 0, 4_000_000)
    h.reject(h.margin_tx(alice, 0, -4_000_001), "insufficient_margin")


def test_margin_out_without_position_rejects(h, new_user) -> None:
    alice = new_user()
    h.deposit(alice, 10_000_000)
    h.reject(h.margin_tx(alice, 0, -1), "no_position")


def test_margin_out_open_long_imr_boundary(h) -> None:
    # taker: 1,000 USDC margin, buys 0.1 BTC (10,000 lots) at $60,000 (600,000 ticks) = the mark
    #   n = 6,000,000,000; taker fee ceil(n * 500 / 1e6) = 3,000,000
    #   quote = 1,000,000,000 - 6,000,000,000 - 3,000,000 = -5,003,000,000
    #   equity at mark = quote + 6,000,000,000 = 997,000,000; IMR = ceil(6e9 * 5%) = 300,000,000
    #   -> at most 697,000,000 can leave
    maker = h.funded(2_000_000_000, 1_000_000_000)
    taker = h.funded(2_000_000_000, 1_000_000_000)
    h.fill(maker, taker, 10_000, 600_000)
    pos = h.ledger.position(taker.account_id, 0)
    assert pos.quote == -5_003_000_000
    assert pos.equity(600_000, BTC_USD) == 997_000_000
    h.reject(h.margin_tx(taker, 0, -697_000_001), "insufficient_margin")
    result = h.margin(taker, 0, -697_000_000)
    assert result.position.quote == -5_700_000_000
    assert result.position.equity(600_000, BTC_USD) == 300_000_000  # exactly the IMR
    assert result.collateral == 1_697_000_000
    h.reject(h.margin_tx(taker, 0, -1), "insufficient_margin")
    h.margin(taker, 0, 1)  # margin can always go in


def test_margin_out_open_short_imr_boundary(h) -> None:
    # maker sells 10,000 lots at 600,000: quote = 1e9 + 6e9 - 600,000 (maker fee) = 6,999,400,000
    #   equity = 6,999,400,000 - 6,000,000,000 = 999,400,000; IMR 300,000,000 -> 699,400,000 free
    maker = h.funded(2_000_000_000, 1_000_000_000)
    taker = h.funded(2_000_000_000, 1_000_000_000)
    h.fill(maker, taker, 10_000, 600_000)
    h.reject(h.margin_tx(maker, 0, -699_400_001), "insufficient_margin")
    h.margin(maker, 0, -699_400_000)
    assert h.ledger.position(maker.account_id, 0).quote == 6_300_000_000


@pytest.mark.parametrize(
    "thing",
    [
        "deposit",
        None,
        b"\x01",
        BTC_USD,  # a leaf, not a transition
        Account(0, "0x" + "11" * 20, 1, 0),
    ],
)
def test_apply_non_transition_raises_type_error(h, thing: object) -> None:
    """Neither ``apply`` nor ``validate`` touches the state for something that is not a
    transition: the root and every leaf stay as they were."""
    maker, taker = h.funded(10**10, 10**9), h.funded(10**10, 10**9)
    h.fill(maker, taker, 10, 600_000)
    h.place(maker, True, 590_000, 3)
    before = h.snapshot()
    assert len(before[1]) > 8  # markets, exchange, accounts, positions and orders
    with pytest.raises(TypeError, match="not a transition"):
        h.ledger.apply(thing)  # type: ignore[call-overload]
    h.assert_unchanged(before)
    with pytest.raises(TypeError, match="not a transition"):
        h.ledger.validate(thing)  # type: ignore[call-overload]
    h.assert_unchanged(before)
