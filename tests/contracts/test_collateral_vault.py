"""CollateralVault: deposits into the prefix-hash queue, payouts by the Settlement contract only."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi import encode

from isoperp.hashing import keccak256

ZERO = "0x0000000000000000000000000000000000000000"
ZERO32 = b"\x00" * 32
USDC = 10**6
# MisbehavingToken.Mode
NORMAL, RETURN_FALSE, RETURN_NOTHING, REVERT_EMPTY = range(4)


def prefix_hash(prev: bytes, index: int, owner: str, amount: int, timestamp: int) -> bytes:
    """h_{i+1} = keccak256(abi.encode(h_i, uint64 i, address owner, uint128 amount, uint64 ts))."""
    return keccak256(
        encode(
            ["bytes32", "uint64", "address", "uint128", "uint64"],
            [prev, index, owner, amount, timestamp],
        )
    )


def _fund(usdc: Any, vault: Any, who: Any, amount: int) -> None:
    usdc.mint(who, amount, sender=who)
    usdc.approve(vault, amount, sender=who)


@pytest.fixture
def odd_token(project: Any, deployer: Any) -> Any:
    return deployer.deploy(project.MisbehavingToken)


@pytest.fixture
def usdc_vault(project: Any, deployer: Any, usdc: Any, oracle: Any) -> Any:
    """A vault over MockUSDC whose `settlement` is the deployer (so payOut can be driven); its
    escape hatch is the oracle account (the other payer)."""
    return deployer.deploy(project.CollateralVault, usdc, oracle)


@pytest.fixture
def odd_vault(project: Any, deployer: Any, odd_token: Any, oracle: Any) -> Any:
    """A vault over MisbehavingToken whose `settlement` is the deployer (drives payOut)."""
    return deployer.deploy(project.CollateralVault, odd_token, oracle)


# ---------------------------------------------------------------- construction / views


def test_constructor_records_token_and_settlement_succeeds(
    vault: Any, settlement: Any, usdc: Any
) -> None:
    assert vault.token() == usdc.address
    assert vault.settlement() == settlement.address
    assert vault.depositCount() == 0
    assert bytes(vault.depositPrefixHash(0)) == ZERO32


# ---------------------------------------------------------------- deposit


def test_deposit_for_other_owner_succeeds(
    vault: Any, usdc: Any, alice: Any, bob: Any, chain: Any
) -> None:
    _fund(usdc, vault, alice, 250 * USDC)
    receipt = vault.deposit(bob, 250 * USDC, sender=alice)
    ts = chain.blocks[receipt.block_number].timestamp
    h1 = prefix_hash(ZERO32, 0, bob.address, 250 * USDC, ts)
    assert receipt.events == [
        usdc.Transfer(alice, vault, 250 * USDC),
        vault.Deposited(0, bob, alice, 250 * USDC, ts, h1),
    ]
    assert receipt.return_value == 0
    assert vault.depositCount() == 1
    assert bytes(vault.depositPrefixHash(1)) == h1
    assert usdc.balanceOf(vault) == 250 * USDC
    assert usdc.balanceOf(alice) == 0


def test_deposit_chain_matches_prefix_hash_spec_succeeds(
    vault: Any, usdc: Any, alice: Any, bob: Any, chain: Any
) -> None:
    expected = [ZERO32]
    for i, (who, amount) in enumerate([(alice, 1), (bob, 7 * USDC), (alice, 2**64 + 3)]):
        _fund(usdc, vault, who, amount)
        receipt = vault.deposit(who, amount, sender=who)
        assert receipt.return_value == i
        ts = chain.blocks[receipt.block_number].timestamp
        expected.append(prefix_hash(expected[-1], i, who.address, amount, ts))
    assert vault.depositCount() == 3
    assert [bytes(vault.depositPrefixHash(c)) for c in range(4)] == expected


def test_deposit_zero_owner_reverts(vault: Any, usdc: Any, alice: Any, reverts: Any) -> None:
    _fund(usdc, vault, alice, 1)
    with reverts(vault.Vault_ZeroOwner):
        vault.deposit(ZERO, 1, sender=alice)


def test_deposit_zero_amount_reverts(vault: Any, alice: Any, reverts: Any) -> None:
    with reverts(vault.Vault_ZeroAmount):
        vault.deposit(alice, 0, sender=alice)


def test_deposit_without_allowance_reverts(vault: Any, usdc: Any, alice: Any, reverts: Any) -> None:
    # The token's own error is bubbled up unchanged.
    usdc.mint(alice, 10, sender=alice)
    with reverts(usdc.MockUSDC_InsufficientAllowance, allowance=0, needed=10):
        vault.deposit(alice, 10, sender=alice)


def test_deposit_more_than_uint128_reverts(vault: Any, usdc: Any, alice: Any, reverts: Any) -> None:
    _fund(usdc, vault, alice, 2**128)
    with reverts(vault.Vault_AmountTooLarge, amount=2**128):
        vault.deposit(alice, 2**128, sender=alice)


def test_deposit_total_beyond_uint128_reverts(
    vault: Any, usdc: Any, alice: Any, reverts: Any
) -> None:
    # Each amount fits, the running total would not: the vault keeps its totals in uint128.
    _fund(usdc, vault, alice, 2**128)
    vault.deposit(alice, 2**128 - 1, sender=alice)
    with reverts(vault.Vault_AmountTooLarge, amount=1):
        vault.deposit(alice, 1, sender=alice)
    assert vault.depositTotal() == 2**128 - 1


def test_deposit_fee_on_transfer_credits_received_succeeds(
    odd_vault: Any, odd_token: Any, alice: Any
) -> None:
    odd_token.mint(alice, 1_000_000, sender=alice)
    odd_token.setFee(10_000, sender=alice)  # 1%
    receipt = odd_vault.deposit(alice, 1_000_000, sender=alice)
    event = receipt.decode_logs(odd_vault.Deposited)[0]
    assert event.amount == 990_000
    assert odd_token.balanceOf(odd_vault) == 990_000


def test_deposit_nothing_received_reverts(
    odd_vault: Any, odd_token: Any, alice: Any, reverts: Any
) -> None:
    odd_token.mint(alice, 100, sender=alice)
    odd_token.setFee(1_000_000, sender=alice)  # everything burnt on the way
    with reverts(odd_vault.Vault_ZeroAmount):
        odd_vault.deposit(alice, 100, sender=alice)


def test_deposit_token_returns_false_reverts(
    odd_vault: Any, odd_token: Any, alice: Any, reverts: Any
) -> None:
    odd_token.mint(alice, 100, sender=alice)
    odd_token.setMode(RETURN_FALSE, sender=alice)
    with reverts(odd_vault.Vault_TokenTransferFailed, token=odd_token.address):
        odd_vault.deposit(alice, 100, sender=alice)


def test_deposit_token_reverts_without_reason_reverts(
    odd_vault: Any, odd_token: Any, alice: Any, reverts: Any
) -> None:
    odd_token.mint(alice, 100, sender=alice)
    odd_token.setMode(REVERT_EMPTY, sender=alice)
    with reverts(odd_vault.Vault_TokenTransferFailed, token=odd_token.address):
        odd_vault.deposit(alice, 100, sender=alice)


def test_deposit_token_returning_nothing_succeeds(
    odd_vault: Any, odd_token: Any, alice: Any
) -> None:
    odd_token.mint(alice, 100, sender=alice)
    odd_token.setMode(RETURN_NOTHING, sender=alice)
    odd_vault.deposit(alice, 100, sender=alice)
    assert odd_vault.depositCount() == 1
    assert odd_token.balanceOf(odd_vault) == 100


def test_deposit_reentered_from_token_reverts(
    odd_vault: Any, odd_token: Any, alice: Any, reverts: Any
) -> None:
    # Without the lock the inner deposit's tokens would count again in the outer balance delta.
    odd_token.mint(alice, 100, sender=alice)
    inner = odd_vault.deposit.encode_input(alice, 10)
    odd_token.setCallback(odd_vault, inner, sender=alice)
    with reverts(odd_vault.Vault_Reentered):
        odd_vault.deposit(alice, 50, sender=alice)


# ---------------------------------------------------------------- payOut


def test_payOut_by_settlement_succeeds(
    odd_vault: Any, odd_token: Any, deployer: Any, alice: Any, bob: Any
) -> None:
    odd_token.mint(alice, 100, sender=alice)
    odd_vault.deposit(alice, 100, sender=alice)
    receipt = odd_vault.payOut(bob, 60, sender=deployer)
    assert receipt.decode_logs(odd_vault.PaidOut)[0].to == bob.address
    assert receipt.decode_logs(odd_vault.PaidOut)[0].amount == 60
    assert (odd_token.balanceOf(odd_vault), odd_token.balanceOf(bob)) == (40, 60)


def test_payOut_usdc_moves_tokens_succeeds(
    usdc_vault: Any, usdc: Any, deployer: Any, alice: Any, bob: Any
) -> None:
    _fund(usdc, usdc_vault, alice, 100 * USDC)
    usdc_vault.deposit(alice, 100 * USDC, sender=alice)
    receipt = usdc_vault.payOut(bob, 30 * USDC, sender=deployer)
    assert receipt.events == [
        usdc.Transfer(usdc_vault, bob, 30 * USDC),
        usdc_vault.PaidOut(bob, 30 * USDC),
    ]
    assert (usdc.balanceOf(usdc_vault), usdc.balanceOf(bob)) == (70 * USDC, 30 * USDC)


def test_payOut_not_settlement_reverts(funded_vault: Any, stranger: Any, reverts: Any) -> None:
    with reverts(funded_vault.Vault_NotPayer, caller=stranger.address):
        funded_vault.payOut(stranger, 1, sender=stranger)


def test_payOut_by_escape_hatch_succeeds(
    usdc_vault: Any, usdc: Any, alice: Any, oracle: Any
) -> None:
    usdc.mint(usdc_vault, 5, sender=alice)
    assert usdc_vault.escapeHatch() == oracle.address
    usdc_vault.payOut(alice, 5, sender=oracle)
    assert usdc.balanceOf(alice) == 5


def test_locked_outside_calls_succeeds(usdc_vault: Any) -> None:
    assert not usdc_vault.locked()


def test_payOut_more_than_held_reverts(
    usdc_vault: Any, usdc: Any, deployer: Any, alice: Any, bob: Any, reverts: Any
) -> None:
    _fund(usdc, usdc_vault, alice, 100)
    usdc_vault.deposit(alice, 100, sender=alice)
    with reverts(usdc.MockUSDC_InsufficientBalance, balance=100, needed=101):
        usdc_vault.payOut(bob, 101, sender=deployer)


def test_payOut_token_returns_false_reverts(
    odd_vault: Any, odd_token: Any, deployer: Any, bob: Any, reverts: Any
) -> None:
    odd_token.mint(odd_vault, 100, sender=deployer)
    odd_token.setMode(RETURN_FALSE, sender=deployer)
    with reverts(odd_vault.Vault_TokenTransferFailed, token=odd_token.address):
        odd_vault.payOut(bob, 10, sender=deployer)


def test_payOut_reentered_from_token_reverts(
    odd_vault: Any, odd_token: Any, deployer: Any, bob: Any, reverts: Any
) -> None:
    odd_token.mint(odd_vault, 100, sender=deployer)
    odd_token.setCallback(odd_vault, odd_vault.payOut.encode_input(bob, 10), sender=deployer)
    with reverts(odd_vault.Vault_Reentered):
        odd_vault.payOut(bob, 10, sender=deployer)


# ---------------------------------------------------------------- depositPrefixHash


def test_depositPrefixHash_cursor_at_count_succeeds(
    funded_vault: Any,
) -> None:
    assert funded_vault.depositCount() == 2
    assert bytes(funded_vault.depositPrefixHash(2)) != ZERO32


def test_depositPrefixHash_cursor_beyond_count_reverts(
    funded_vault: Any, deployer: Any, reverts: Any
) -> None:
    with reverts(funded_vault.Vault_CursorOutOfRange, cursor=3, count=2):
        funded_vault.depositPrefixHash.transact(3, sender=deployer)


# ---------------------------------------------------------------- depositedBefore / depositTotal


def test_depositedBefore_cumulative_amounts_succeeds(
    vault: Any, usdc: Any, alice: Any, bob: Any
) -> None:
    # Odd and even queue indices share storage words: check every cursor across several words,
    # with amounts that fill the high bits.
    amounts = [1, 2**127, 7 * USDC, 3, 2**64 + 5, 11]
    assert vault.depositedBefore(0) == 0 and vault.depositTotal() == 0
    for i, amount in enumerate(amounts):
        who = alice if i % 2 else bob
        _fund(usdc, vault, who, amount)
        vault.deposit(who, amount, sender=who)
    totals = [sum(amounts[:c]) for c in range(len(amounts) + 1)]
    assert [vault.depositedBefore(c) for c in range(len(amounts) + 1)] == totals
    assert vault.depositTotal() == totals[-1]


def test_depositedBefore_cursor_beyond_count_reverts(
    funded_vault: Any, deployer: Any, reverts: Any
) -> None:
    assert funded_vault.depositedBefore(2) == 1_000_000 * USDC
    with reverts(funded_vault.Vault_CursorOutOfRange, cursor=3, count=2):
        funded_vault.depositedBefore.transact(3, sender=deployer)
