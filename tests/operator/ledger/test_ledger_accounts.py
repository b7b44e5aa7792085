"""Ledger genesis, queries, copies and snapshots; Deposit rules."""

from __future__ import annotations

import dataclasses

import pytest
from eth_abi import encode as abi_encode

from isoperp.errors import ConfigError, ProtocolError
from isoperp.hashing import keccak256
from isoperp.ledger.ledger import AppliedDeposit, Ledger, rebuild_root
from isoperp.ledger.markets import BTC_USD, DEVNET_MARKETS, DEVNET_OPERATOR, ETH_USD
from isoperp.ledger.model import Account, Exchange
from isoperp.ledger.transitions import Deposit
from isoperp.protocol.constants import (
    INSURANCE_ACCOUNT,
    STATE_TREE_DEPTH,
    WITHDRAWAL_TREE_DEPTH,
    ZERO_ADDRESS,
)
from isoperp.protocol.leaves import (
    EXCHANGE_INDEX,
    account_index,
    encode_exchange,
    encode_market,
    market_index,
    position_index,
)
from isoperp.tree.merkle import EMPTY, SparseMerkleTree, hash_leaf, verify_proof

# -- genesis ---------------------------------------------------------------------------------------


def test_genesis_devnet_root_matches_tree_of_eth_abi_leaves(domain, oracle) -> None:
    ledger = Ledger.genesis(DEVNET_MARKETS, domain, oracle, fee_recipient=DEVNET_OPERATOR)
    empty_withdrawals = SparseMerkleTree(WITHDRAWAL_TREE_DEPTH).root  # Z[32]
    exchange_types = ["uint8", "int128", "uint128", "uint32", "uint64", "uint64"]
    exchange_types += ["bytes32", "uint64", "uint128"]
    exchange = abi_encode(
        exchange_types,
        [4, 0, 0, 0, 0, 0, empty_withdrawals, 0, 0],
    )
    insurance = abi_encode(
        ["uint8", "uint32", "address", "uint128", "uint64"], [1, 2**24 - 1, ZERO_ADDRESS, 0, 0]
    )
    tree = SparseMerkleTree(STATE_TREE_DEPTH)
    tree.set(market_index(0), keccak256(b"\x00" + encode_market(BTC_USD)))
    tree.set(market_index(1), keccak256(b"\x00" + encode_market(ETH_USD)))
    tree.set(EXCHANGE_INDEX, keccak256(b"\x00" + exchange))
    tree.set(account_index(2**24 - 1), keccak256(b"\x00" + insurance))
    assert ledger.state_root == tree.root
    assert ledger.leaf_bytes(EXCHANGE_INDEX) == exchange
    assert ledger.exchange == Exchange(0, 0, 0, 0, 0, empty_withdrawals, 0, 0)
    assert ledger.withdrawals() == [] and ledger.withdrawals_tree().root == empty_withdrawals
    assert ledger.fee_recipient == DEVNET_OPERATOR
    assert ledger.markets == DEVNET_MARKETS
    assert [m.symbol for m in ledger.markets] == ["BTC-USD", "ETH-USD"]
    assert ledger.market(1) == ETH_USD and ledger.market(2) is None
    assert list(ledger.accounts()) == [Account(INSURANCE_ACCOUNT, ZERO_ADDRESS, 0, 0)]
    assert list(ledger.positions()) == [] and list(ledger.orders()) == []
    assert ledger.account_id_of(ZERO_ADDRESS) == INSURANCE_ACCOUNT
    assert ledger.oracle == oracle
    assert ledger.total_liabilities() == 0
    ledger.check_invariants(net_deposits=0)


def test_genesis_duplicate_market_raises_config_error(domain, oracle) -> None:
    with pytest.raises(ConfigError):
        Ledger.genesis([BTC_USD, BTC_USD], domain, oracle, fee_recipient=DEVNET_OPERATOR)


def test_genesis_open_interest_raises_config_error(domain, oracle) -> None:
    with pytest.raises(ConfigError):
        Ledger.genesis(
            [dataclasses.replace(BTC_USD, open_interest=1)],
            domain,
            oracle,
            fee_recipient=DEVNET_OPERATOR,
        )


def test_genesis_not_a_market_raises_config_error(domain, oracle) -> None:
    with pytest.raises(ConfigError):
        Ledger.genesis([Exchange.genesis()], domain, oracle, fee_recipient=DEVNET_OPERATOR)  # type: ignore[list-item]


def test_ledger_bad_domain_raises_type_error(oracle) -> None:
    with pytest.raises(TypeError):
        Ledger.genesis(DEVNET_MARKETS, "31337", oracle, fee_recipient=DEVNET_OPERATOR)  # type: ignore[arg-type]


@pytest.mark.parametrize("oracle", ["0x1234", ZERO_ADDRESS, 5])
def test_genesis_bad_oracle_raises_config_error(domain, oracle) -> None:
    with pytest.raises(ConfigError):
        Ledger.genesis(DEVNET_MARKETS, domain, oracle, fee_recipient=DEVNET_OPERATOR)


def test_proof_of_every_leaf_verifies_against_root(h) -> None:
    h.funded(5_000_000, 1_000_000)
    root = h.ledger.state_root
    for index, data in h.ledger.leaves():
        assert verify_proof(root, hash_leaf(data), index, h.ledger.proof(index), STATE_TREE_DEPTH)
    empty = position_index(0, 1)
    assert h.ledger.leaf_bytes(empty) is None
    assert verify_proof(root, EMPTY, empty, h.ledger.proof(empty), STATE_TREE_DEPTH)


def test_copy_then_apply_leaves_original_unchanged(h, new_user) -> None:
    h.funded(5_000_000)
    before = h.snapshot()
    other = h.ledger.copy()
    other.apply(Deposit(1, 1, new_user().address, 7, 0))
    assert other.state_root != h.ledger.state_root
    h.assert_unchanged(before)
    assert h.ledger.account(1) is None and other.account(1) is not None


def test_validate_returns_result_without_changing_state(h, new_user) -> None:
    before = h.snapshot()
    result = h.ledger.validate(Deposit(0, 0, new_user().address, 9, 0))
    assert isinstance(result, AppliedDeposit) and result.created and result.collateral == 9
    h.assert_unchanged(before)


def _restore(h, domain, leaves, withdrawals=None):
    if withdrawals is None:
        withdrawals = h.ledger.withdrawals()
    return Ledger.from_leaves(
        leaves, domain, h.ledger.oracle, fee_recipient=DEVNET_OPERATOR, withdrawals=withdrawals
    )


def test_from_leaves_snapshot_reproduces_state(h, domain) -> None:
    a = h.funded(5_000_000, 2_000_000)
    b = h.funded(5_000_000, 2_000_000)
    h.fill(a, b, 3, 600_000)
    h.withdraw(a, 1_000)
    restored = _restore(h, domain, h.ledger.leaves())
    assert restored.withdrawals() == h.ledger.withdrawals() and len(restored.withdrawals()) == 1
    restored.check_invariants()
    assert restored.state_root == h.ledger.state_root
    assert list(restored.accounts()) == list(h.ledger.accounts())
    assert list(restored.positions()) == list(h.ledger.positions())
    assert list(restored.orders()) == list(h.ledger.orders()) and len(list(restored.orders())) == 2
    assert restored.exchange == h.ledger.exchange
    assert restored.account_id_of(b.address.lower()) == b.account_id


def test_from_leaves_misplaced_leaf_raises_protocol_error(h, domain) -> None:
    leaves = dict(h.ledger.leaves())
    leaves[market_index(5)] = leaves.pop(market_index(1))
    with pytest.raises(ProtocolError):
        _restore(h, domain, leaves.items())


def test_from_leaves_inconsistent_state_raises_protocol_error(h, domain) -> None:
    leaves = dict(h.ledger.leaves())
    leaves[market_index(0)] = encode_market(dataclasses.replace(BTC_USD, open_interest=5))
    with pytest.raises(ProtocolError, match="open interest"):
        _restore(h, domain, leaves.items())
    leaves = dict(h.ledger.leaves())
    del leaves[account_index(INSURANCE_ACCOUNT)]
    with pytest.raises(ProtocolError, match="account ids"):
        _restore(h, domain, leaves.items())
    leaves = dict(h.ledger.leaves())
    del leaves[EXCHANGE_INDEX]
    with pytest.raises(ProtocolError, match="exchange"):
        _restore(h, domain, leaves.items())


def test_from_leaves_withdrawals_not_in_exchange_leaf_raises_protocol_error(h, domain) -> None:
    a = h.funded(5_000_000)
    h.withdraw(a, 1_000)
    with pytest.raises(ProtocolError, match="withdrawals"):
        _restore(h, domain, h.ledger.leaves(), withdrawals=[])
    extra = [*h.ledger.withdrawals(), *h.ledger.withdrawals()]
    with pytest.raises(ProtocolError, match="withdrawals"):
        _restore(h, domain, h.ledger.leaves(), withdrawals=extra)


def test_rebuild_root_from_models_matches_incremental(h) -> None:
    a = h.funded(5_000_000, 2_000_000)
    b = h.funded(5_000_000, 2_000_000)
    h.fill(a, b, 3, 600_000)
    leaves = [
        *h.ledger.accounts(),
        *h.ledger.positions(),
        *h.ledger.orders(),
        *h.ledger.markets,
        h.ledger.exchange,
    ]
    assert rebuild_root(leaves) == h.ledger.state_root


# -- deposit ---------------------------------------------------------------------------------------


def test_deposit_new_owner_creates_account(h, new_user) -> None:
    user = new_user()
    result = h.ledger.apply(Deposit(0, 0, user.address, 1_500_000, 123))
    assert result == AppliedDeposit(0, 1_500_000, True, 1_500_000, (EXCHANGE_INDEX, 0))
    assert h.ledger.account(0) == Account(0, user.address, 1_500_000, 0)
    assert h.ledger.account_id_of(user.address) == 0
    assert h.ledger.exchange == dataclasses.replace(
        Exchange.genesis(), next_account_id=1, deposit_cursor=1
    )
    assert h.ledger.leaf_bytes(account_index(0)) == abi_encode(
        ["uint8", "uint32", "address", "uint128", "uint64"], [1, 0, user.address, 1_500_000, 0]
    )
    assert h.ledger.leaf_bytes(EXCHANGE_INDEX) == encode_exchange(h.ledger.exchange)


def test_deposit_existing_owner_credits_account(h, new_user) -> None:
    alice, bob = new_user(), new_user()
    h.deposit(alice, 100)
    h.deposit(bob, 50)
    result = h.ledger.apply(Deposit(2, 0, alice.address, 25, 0))
    assert result.account_id == 0 and not result.created and result.collateral == 125
    assert h.ledger.exchange == dataclasses.replace(
        Exchange.genesis(), next_account_id=2, deposit_cursor=3
    )
    assert h.ledger.account(1) == Account(1, bob.address, 50, 0)


def test_deposit_owner_in_lower_case_credits_same_account(h, new_user) -> None:
    alice = new_user()
    h.deposit(alice, 100)
    result = h.ledger.apply(Deposit(1, 0, alice.address.lower(), 1, 0))
    assert result.account_id == 0 and not result.created
    assert h.ledger.account(0) == Account(0, alice.address, 101, 0)  # stays checksummed
    assert h.ledger.account_id_of(alice.address.upper().replace("0X", "0x")) == 0


def test_deposit_out_of_order_rejects(h, new_user) -> None:
    user = new_user()
    h.reject(Deposit(1, 0, user.address, 100, 0), "deposit_out_of_order")
    h.deposit(user, 100)
    h.reject(Deposit(0, 0, user.address, 100, 0), "deposit_out_of_order")  # replayed
    h.reject(Deposit(5, 0, user.address, 100, 0), "deposit_out_of_order")


def test_deposit_new_owner_wrong_id_rejects(h, new_user) -> None:
    h.deposit(new_user(), 100)  # account 0
    user = new_user()
    h.reject(Deposit(1, 2, user.address, 100, 0), "bad_account_id")  # skips id 1
    h.reject(Deposit(1, 0, user.address, 100, 0), "bad_account_id")  # someone else's id


def test_deposit_existing_owner_other_id_rejects(h, new_user) -> None:
    alice = new_user()
    h.deposit(alice, 100)
    h.reject(Deposit(1, 1, alice.address, 100, 0), "bad_account_id")  # a second account


def test_deposit_zero_amount_rejects(h, new_user) -> None:
    h.reject(Deposit(0, 0, new_user().address, 0, 0), "bad_amount")


@pytest.mark.parametrize(
    "t",
    [
        Deposit(0, 0, "0x1234", 1, 0),
        Deposit(0, 0, "0x" + "g" * 40, 1, 0),
        Deposit(0, 0, "0x" + "11" * 20, -1, 0),
        Deposit(0, 0, "0x" + "11" * 20, 1 << 128, 0),
        Deposit(-1, 0, "0x" + "11" * 20, 1, 0),
        Deposit(0, True, "0x" + "11" * 20, 1, 0),
        Deposit(0, 0, "0x" + "11" * 20, 1, 1 << 64),
    ],
)
def test_deposit_malformed_fields_reject(h, t: Deposit) -> None:
    h.reject(t, "malformed")


def test_deposit_collateral_overflow_rejects(h, new_user) -> None:
    alice = new_user()
    h.deposit(alice, (1 << 128) - 1)
    h.reject(Deposit(1, 0, alice.address, 1, 0), "collateral_overflow")


def test_deposit_for_zero_address_rejects_insurance_account(h) -> None:
    h.reject(Deposit(0, INSURANCE_ACCOUNT, ZERO_ADDRESS, 100, 0), "insurance_account")
    h.reject(Deposit(0, 0, ZERO_ADDRESS, 100, 0), "insurance_account")


def test_deposit_new_owner_insurance_id_rejects_bad_account_id(h, new_user) -> None:
    h.reject(Deposit(0, INSURANCE_ACCOUNT, new_user().address, 100, 0), "bad_account_id")


def test_deposit_last_id_before_insurance_rejects_accounts_full(h, new_user) -> None:
    # only reachable after 2^24 - 1 accounts: put the counter there directly
    full = dataclasses.replace(h.ledger.exchange, next_account_id=INSURANCE_ACCOUNT)
    h.ledger._put_exchange(full)
    h.reject(Deposit(0, INSURANCE_ACCOUNT, new_user().address, 100, 0), "accounts_full")
