"""MockUSDC: the devnet collateral token."""

from __future__ import annotations

from typing import Any

ZERO = "0x0000000000000000000000000000000000000000"
MAX = 2**256 - 1


def test_metadata_matches_usdc_succeeds(usdc: Any) -> None:
    assert usdc.name() == "Mock USDC"
    assert usdc.symbol() == "USDC"
    assert usdc.decimals() == 6
    assert usdc.totalSupply() == 0


# ---------------------------------------------------------------- mint


def test_mint_by_anyone_succeeds(usdc: Any, alice: Any, bob: Any) -> None:
    receipt = usdc.mint(bob, 5_000_000, sender=alice)
    assert usdc.balanceOf(bob) == 5_000_000
    assert usdc.totalSupply() == 5_000_000
    assert receipt.events == [usdc.Transfer(ZERO, bob, 5_000_000)]


def test_mint_to_zero_address_reverts(usdc: Any, alice: Any, reverts: Any) -> None:
    with reverts(usdc.MockUSDC_InvalidReceiver, receiver=ZERO):
        usdc.mint(ZERO, 1, sender=alice)


# ---------------------------------------------------------------- transfer


def test_transfer_moves_balance_succeeds(usdc: Any, alice: Any, bob: Any) -> None:
    usdc.mint(alice, 100, sender=alice)
    receipt = usdc.transfer(bob, 40, sender=alice)
    assert (usdc.balanceOf(alice), usdc.balanceOf(bob)) == (60, 40)
    assert usdc.totalSupply() == 100
    assert receipt.events == [usdc.Transfer(alice, bob, 40)]


def test_transfer_insufficient_balance_reverts(
    usdc: Any, alice: Any, bob: Any, reverts: Any
) -> None:
    usdc.mint(alice, 10, sender=alice)
    with reverts(usdc.MockUSDC_InsufficientBalance, balance=10, needed=11) as info:
        usdc.transfer(bob, 11, sender=alice)
    assert info.value.inputs["from"] == alice.address


def test_transfer_to_zero_address_reverts(usdc: Any, alice: Any, reverts: Any) -> None:
    usdc.mint(alice, 10, sender=alice)
    with reverts(usdc.MockUSDC_InvalidReceiver, receiver=ZERO):
        usdc.transfer(ZERO, 1, sender=alice)


# ---------------------------------------------------------------- approve


def test_approve_sets_allowance_succeeds(usdc: Any, alice: Any, bob: Any) -> None:
    receipt = usdc.approve(bob, 123, sender=alice)
    assert usdc.allowance(alice, bob) == 123
    assert receipt.events == [usdc.Approval(alice, bob, 123)]


def test_approve_zero_spender_reverts(usdc: Any, alice: Any, reverts: Any) -> None:
    with reverts(usdc.MockUSDC_InvalidSpender, spender=ZERO):
        usdc.approve(ZERO, 1, sender=alice)


# ---------------------------------------------------------------- transferFrom


def test_transferFrom_spends_allowance_succeeds(
    usdc: Any, alice: Any, bob: Any, stranger: Any
) -> None:
    usdc.mint(alice, 100, sender=alice)
    usdc.approve(bob, 70, sender=alice)
    receipt = usdc.transferFrom(alice, stranger, 30, sender=bob)
    assert usdc.allowance(alice, bob) == 40
    assert (usdc.balanceOf(alice), usdc.balanceOf(stranger)) == (70, 30)
    assert receipt.events == [usdc.Transfer(alice, stranger, 30)]


def test_transferFrom_infinite_allowance_not_spent_succeeds(
    usdc: Any, alice: Any, bob: Any
) -> None:
    usdc.mint(alice, 100, sender=alice)
    usdc.approve(bob, MAX, sender=alice)
    usdc.transferFrom(alice, bob, 100, sender=bob)
    assert usdc.allowance(alice, bob) == MAX


def test_transferFrom_insufficient_allowance_reverts(
    usdc: Any, alice: Any, bob: Any, reverts: Any
) -> None:
    usdc.mint(alice, 100, sender=alice)
    usdc.approve(bob, 5, sender=alice)
    with reverts(usdc.MockUSDC_InsufficientAllowance, allowance=5, needed=6) as info:
        usdc.transferFrom(alice, bob, 6, sender=bob)
    assert info.value.inputs["owner"] == alice.address
    assert info.value.inputs["spender"] == bob.address


def test_transferFrom_insufficient_balance_reverts(
    usdc: Any, alice: Any, bob: Any, reverts: Any
) -> None:
    usdc.mint(alice, 5, sender=alice)
    usdc.approve(bob, 100, sender=alice)
    with reverts(usdc.MockUSDC_InsufficientBalance, balance=5, needed=6):
        usdc.transferFrom(alice, bob, 6, sender=bob)


def test_transferFrom_to_zero_address_reverts(
    usdc: Any, alice: Any, bob: Any, reverts: Any
) -> None:
    usdc.mint(alice, 5, sender=alice)
    usdc.approve(bob, 5, sender=alice)
    with reverts(usdc.MockUSDC_InvalidReceiver, receiver=ZERO):
        usdc.transferFrom(alice, ZERO, 1, sender=bob)
