"""Ledger transitions: the records of a batch (docs/PROTOCOL.md, section 3).

Each transition is a frozen value object that carries exactly what its batch record carries, so the
ledger applies the same thing that is published on L1 and later re-executed by fraud proofs.
Addresses are 0x-prefixed checksummed strings; signatures are 65 bytes r ‖ s ‖ v.
"""

from __future__ import annotations

from dataclasses import dataclass

from isoperp.protocol.constants import FORCED_KIND_EXIT, FORCED_KIND_WITHDRAWAL


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
    """``size`` lots of the taker order (``taker_id``, slot ``taker_slot``) traded against the
    resting maker order (``maker_id``, ``maker_slot``) at the maker's ``price``."""

    market_id: int
    maker_id: int
    maker_slot: int
    taker_id: int
    taker_slot: int
    size: int
    price: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    """Registers a signed order in slot ``nonce % 64`` of its account (right before its first
    fill). ``time_in_force``: 0 GTC, 1 IOC, 2 FOK; ``flags``: bit 0 post-only, bit 1 reduce-only;
    ``expiry`` 0 = never. The insurance account's orders carry 65 zero bytes as signature."""

    account_id: int
    market_id: int
    is_buy: bool
    price: int
    size: int
    time_in_force: int
    flags: int
    nonce: int
    expiry: int
    signature: bytes


@dataclass(frozen=True, slots=True)
class CancelOrder:
    """The owner cancels order ``nonce`` (registered or not: an unregistered nonce is burnt)."""

    account_id: int
    nonce: int
    signature: bytes


@dataclass(frozen=True, slots=True)
class OrderDone:
    """The operator closes an IOC/FOK order after its taker pass (its rest can never fill)."""

    account_id: int
    slot: int


@dataclass(frozen=True, slots=True)
class PriceUpdate:
    """A mark price signed by the oracle key."""

    market_id: int
    price: int
    timestamp: int
    signature: bytes


@dataclass(frozen=True, slots=True)
class Funding:
    """Advances the market's funding index at ``rate_ppm`` per 8 hours since the last record."""

    market_id: int
    rate_ppm: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class Liquidate:
    """Closes ``size`` lots of a liquidatable position against the resting maker order
    (``maker_id``, ``maker_slot``) at the maker's ``price``."""

    market_id: int
    account_id: int
    maker_id: int
    maker_slot: int
    size: int
    price: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class Backstop:
    """The insurance account takes over a liquidatable position the book could not absorb."""

    market_id: int
    account_id: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class Deleverage:
    """Closes ``size`` lots of a bankrupt position against the opposite position of
    ``counterparty_id`` at the bankruptcy price (when the insurance fund cannot take it)."""

    market_id: int
    account_id: int
    counterparty_id: int
    size: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class ForcedWithdraw:
    """Serves entry ``forced_index`` of the Settlement's forced-request queue, kind 1: ``requester``
    asked on L1 to withdraw up to ``amount`` of ``account_id``'s free collateral. Served even when
    it cannot be executed (then as a no-op that only advances the cursor); see the ledger."""

    forced_index: int
    account_id: int
    requester: str
    amount: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class ForcedExit:
    """Serves entry ``forced_index`` of the forced-request queue, kind 2: ``requester`` asked on
    L1 to close ``account_id``'s isolated position in ``market_id`` at the mark and withdraw what
    it is worth. Served even when it cannot be executed (a no-op that advances the cursor)."""

    forced_index: int
    account_id: int
    market_id: int
    requester: str
    timestamp: int


@dataclass(frozen=True, slots=True)
class DepositRejected:
    """Deposit ``deposit_index`` of the vault queue cannot be credited (no account id is left for
    a new owner, or ``owner``'s account ``account_id`` cannot hold ``amount`` more collateral):
    the deposit cursor advances and ``amount`` is refunded to ``owner`` through the withdrawals
    tree (leaf account id ``0xFFFFFFFF``). Same fields as ``Deposit``."""

    deposit_index: int
    account_id: int
    owner: str
    amount: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class FeeCollect:
    """The operator collects ``amount`` of the fee balance: 20% go to the insurance fund, the rest
    to the fee recipient (the Settlement's operator) through the withdrawals tree."""

    amount: int


ForcedRequest = ForcedWithdraw | ForcedExit
"""Transitions that serve the forced-request queue (records 0x10 / 0x11)."""


def forced_request(
    index: int,
    kind: int,
    requester: str,
    account_id: int,
    market_id: int,
    amount: int,
    timestamp: int,
) -> ForcedWithdraw | ForcedExit:
    """The transition that serves forced-request queue entry ``index`` (the fields of the
    Settlement's ``ForcedRequested`` event, in its order).

    Raises ``ValueError`` for an unknown ``kind``, a withdrawal with ``market_id != 0`` or an exit
    with ``amount != 0``: the records do not carry those fields (the contract always queues 0
    there), so such an entry could never reproduce the queue's prefix hash.
    """
    if kind == FORCED_KIND_WITHDRAWAL:
        if market_id != 0:
            raise ValueError(f"forced withdrawal {index} has market id {market_id}, not 0")
        return ForcedWithdraw(index, account_id, requester, amount, timestamp)
    if kind == FORCED_KIND_EXIT:
        if amount != 0:
            raise ValueError(f"forced exit {index} has amount {amount}, not 0")
        return ForcedExit(index, account_id, market_id, requester, timestamp)
    raise ValueError(f"forced request {index} has unknown kind {kind}")


Transition = (
    Deposit
    | Withdraw
    | MarginTransfer
    | Fill
    | PlaceOrder
    | CancelOrder
    | OrderDone
    | PriceUpdate
    | Funding
    | Liquidate
    | Backstop
    | Deleverage
    | ForcedWithdraw
    | ForcedExit
    | DepositRejected
    | FeeCollect
)

SignedRequest = Withdraw | MarginTransfer | PlaceOrder | CancelOrder | PriceUpdate
"""Transitions that carry an EIP-712 signature (owner's, or the oracle's for prices)."""
