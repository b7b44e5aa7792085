"""Ledger transitions: the records of a batch (docs/PROTOCOL.md, section 3).

Each transition is a frozen value object that carries exactly what its batch record carries, so the
ledger applies the same thing that is published on L1 and later re-executed by fraud proofs.
Addresses are 0x-prefixed checksummed strings; signatures are 65 bytes r ‖ s ‖ v.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Deposit:
    """Deposit ``deposit_index`` of the vault queue, credited to ``account_id`` of ``owner``."""

    deposit_index: int
    account_id: int
    owner: str
    amount: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class Withdraw:
    """Move ``amount`` of free collateral out to ``recipient`` on L1 (claimable once finalized)."""

    account_id: int
    recipient: str
    amount: int
    nonce: int
    signature: bytes


@dataclass(frozen=True, slots=True)
class MarginTransfer:
    """Move ``amount`` free collateral into the isolated position (negative: back out of it)."""

    account_id: int
    market_id: int
    amount: int
    nonce: int
    signature: bytes


@dataclass(frozen=True, slots=True)
class Fill:
    """``size`` lots traded at the maker's ``price``; the taker bought if ``taker_is_buy``."""

    market_id: int
    maker_id: int
    taker_id: int
    taker_is_buy: bool
    size: int
    price: int
    timestamp: int


Transition = Deposit | Withdraw | MarginTransfer | Fill
