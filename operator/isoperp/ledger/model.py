"""The ledger's value objects: one frozen, slotted dataclass per kind of state leaf
(docs/PROTOCOL.md, section 2).

Every field is an integer in the unit and width of its leaf word (section 1); ``__post_init__``
rejects values the leaf cannot hold (``TypeError`` for non-ints, including ``bool``;
``ValueError`` for ranges), plus the few semantic bounds of the index layout (account ids
``< 2^24``, market ids ``< 64``). Objects are never mutated: a transition builds new ones
(``dataclasses.replace``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from isoperp.hashing import keccak256
from isoperp.ledger import arith
from isoperp.protocol.constants import (
    FLAG_POST_ONLY,
    FLAG_REDUCE_ONLY,
    MAX_ACCOUNTS,
    MAX_MARKETS,
    ORDER_FLAGS_MASK,
    ORDER_SLOTS,
    PPM,
    TIF_FOK,
    WITHDRAWAL_TREE_DEPTH,
)
from isoperp.tree.merkle import zero_hashes

EMPTY_WITHDRAWALS_ROOT = zero_hashes(WITHDRAWAL_TREE_DEPTH)[WITHDRAWAL_TREE_DEPTH]
"""Root of the empty global withdrawals tree, ``Z[32]`` (the genesis exchange leaf's)."""
WITHDRAWALS_CAPACITY = 1 << WITHDRAWAL_TREE_DEPTH
"""Leaves the withdrawals tree can hold (``withdrawal_count`` never exceeds it)."""

_HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")

# Bounds for the validators' fast paths (an all-valid leaf passes one boolean expression; anything
# else runs the field-by-field checks, which raise the precise error).
_U8 = 1 << 8
_U16 = 1 << 16
_U32 = 1 << 32
_U64 = 1 << 64
_U128 = 1 << 128
_I8 = 1 << 7
_I32 = 1 << 31
_I64 = 1 << 63
_I128 = 1 << 127


def _uint(name: str, value: object, bits: int) -> None:
    if type(value) is not int:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= value < (1 << bits):
        raise ValueError(f"{name} = {value} out of range for uint{bits}")


def _sint(name: str, value: object, bits: int) -> None:
    if type(value) is not int:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    bound = 1 << (bits - 1)
    if not -bound <= value < bound:
        raise ValueError(f"{name} = {value} out of range for int{bits}")


def _bounded(name: str, value: int, upper: int) -> None:
    if value >= upper:
        raise ValueError(f"{name} = {value} must be < {upper}")


# EIP-55 without a per-character Python loop: the checksum upper-cases hex letter i iff nibble i
# of keccak256(lower-case hex) is >= 8. Both masks are built with bytes.translate (0x20 per byte
# where it applies) and combined as big integers; XOR with 0x20 turns 'a'..'f' into 'A'..'F'.
_HASH_NIBBLE_HIGH = bytes.maketrans(b"0123456789abcdef", b"\x00" * 8 + b"\x20" * 8)
_HEX_LETTER = bytes.maketrans(b"0123456789abcdef", b"\x00" * 10 + b"\x20" * 6)


def eip55_from_lower_hex(lower: bytes) -> str:
    """``0x`` + the EIP-55 checksummed form of ``lower``: 40 lower-case hex ASCII bytes (not
    checked; callers pass ``raw.hex().encode()``). ~1.3 us, against ~16 us for eth_utils'
    ``to_checksum_address``."""
    flip = int.from_bytes(
        keccak256(lower)[:20].hex().encode().translate(_HASH_NIBBLE_HIGH), "big"
    ) & int.from_bytes(lower.translate(_HEX_LETTER), "big")
    return "0x" + (int.from_bytes(lower, "big") ^ flip).to_bytes(40, "big").decode("ascii")


@functools.lru_cache(maxsize=65_536)
def _checksum_str(address: str) -> str:
    """``checksum_address`` of a string (pure: cached; exceptions are not cached)."""
    if _HEX_ADDRESS.fullmatch(address) is None:
        raise ValueError(f"not a 0x-prefixed 20-byte hex address: {address!r}")
    body = address[2:]
    result = eip55_from_lower_hex(body.lower().encode("ascii"))
    if body != body.lower() and body != body.upper() and address != result:
        raise ValueError(f"bad EIP-55 checksum: {address}")
    return result


def _checksum_str_or_none(address: str) -> str | None:
    """``checksum_address`` of a string, or None where it raises (the validators' fast path)."""
    try:
        return _checksum_str(address)
    except ValueError:
        return None


def checksum_address(address: str | bytes) -> str:
    """The EIP-55 checksummed form of a 20-byte address (``0x`` hex of any case, or raw bytes).

    Raises ``ValueError`` for anything else, and for a mixed-case string whose checksum is wrong.
    """
    if isinstance(address, bytes):
        if len(address) != 20:
            raise ValueError(f"an address is 20 bytes, got {len(address)}")
        return eip55_from_lower_hex(address.hex().encode("ascii"))
    if not isinstance(address, str):
        raise ValueError(f"not a 0x-prefixed 20-byte hex address: {address!r}")
    return _checksum_str(address)


@dataclass(frozen=True, slots=True)
class Market:
    """A market leaf (type 3) plus its display ``symbol``, which is not part of the leaf.

    ``symbol`` does not take part in equality: two markets with the same leaf are equal.
    """

    market_id: int
    mark_price: int
    mark_time: int
    funding_index: int
    funding_time: int
    imf_ppm: int
    mmf_ppm: int
    notional_exp: int
    maker_fee_ppm: int
    taker_fee_ppm: int
    min_size: int
    size_step: int
    price_tick: int
    open_interest: int
    symbol: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        mid, fi, imf, mmf, e = (
            self.market_id, self.funding_index, self.imf_ppm, self.mmf_ppm, self.notional_exp
        )
        maker, taker, step, tick = (
            self.maker_fee_ppm, self.taker_fee_ppm, self.size_step, self.price_tick
        )
        mark, mark_time, funding_time = self.mark_price, self.mark_time, self.funding_time
        min_size, oi = self.min_size, self.open_interest
        if (
            type(mid) is int and type(mark) is int and type(mark_time) is int
            and type(fi) is int and type(funding_time) is int and type(imf) is int
            and type(mmf) is int and type(e) is int and type(maker) is int
            and type(taker) is int and type(min_size) is int and type(step) is int
            and type(tick) is int and type(oi) is int and type(self.symbol) is str
            and 0 <= mid < MAX_MARKETS and 0 <= mark < _U64 and 0 <= mark_time < _U64
            and -_I128 <= fi < _I128 and 0 <= funding_time < _U64 and 0 <= mmf <= imf <= PPM
            and -_I8 <= e < _I8 and -PPM <= maker <= PPM and -PPM <= taker <= PPM
            and 0 <= min_size < _U64 and 0 < step < _U64 and 0 < tick < _U64 and 0 <= oi < _U64
        ):
            return
        self._validate()

    def _validate(self) -> None:
        """Field by field, in order: raises the first error."""
        _uint("market_id", self.market_id, 16)
        _bounded("market_id", self.market_id, MAX_MARKETS)
        _uint("mark_price", self.mark_price, 64)
        _uint("mark_time", self.mark_time, 64)
        _sint("funding_index", self.funding_index, 128)
        _uint("funding_time", self.funding_time, 64)
        _uint("imf_ppm", self.imf_ppm, 32)
        _uint("mmf_ppm", self.mmf_ppm, 32)
        _sint("notional_exp", self.notional_exp, 8)
        _sint("maker_fee_ppm", self.maker_fee_ppm, 32)
        _sint("taker_fee_ppm", self.taker_fee_ppm, 32)
        _uint("min_size", self.min_size, 64)
        _uint("size_step", self.size_step, 64)
        _uint("price_tick", self.price_tick, 64)
        _uint("open_interest", self.open_interest, 64)
        if not isinstance(self.symbol, str):
            raise TypeError(f"symbol must be a str, got {type(self.symbol).__name__}")
        if self.size_step == 0 or self.price_tick == 0:
            raise ValueError("size_step and price_tick must be >= 1")
        if not self.mmf_ppm <= self.imf_ppm <= PPM:
            raise ValueError(
                f"need mmf_ppm <= imf_ppm <= {PPM}, got {self.mmf_ppm} and {self.imf_ppm}"
            )
        if abs(self.maker_fee_ppm) > PPM or abs(self.taker_fee_ppm) > PPM:
            raise ValueError("fee rates must be within +-1e6 ppm")

    def notional(self, size: int, price: int) -> int:
        """``floor(size * price * 10^notional_exp)`` in micro-USDC."""
        return arith.notional(size, price, self.notional_exp)


@dataclass(frozen=True, slots=True)
class Account:
    """An account leaf (type 1): checksummed owner address, free collateral, request nonce."""

    account_id: int
    owner: str
    collateral: int
    nonce: int

    def __post_init__(self) -> None:
        a, c, n = self.account_id, self.collateral, self.nonce
        if (
            type(a) is int and type(c) is int and type(n) is int
            and 0 <= a < MAX_ACCOUNTS and 0 <= c < _U128 and 0 <= n < _U64
            and type(self.owner) is str and _checksum_str_or_none(self.owner) == self.owner
        ):
            return
        self._validate()

    def _validate(self) -> None:
        """Field by field, in order: raises the first error."""
        _uint("account_id", self.account_id, 32)
        _bounded("account_id", self.account_id, MAX_ACCOUNTS)
        if not isinstance(self.owner, str) or checksum_address(self.owner) != self.owner:
            raise ValueError(f"owner must be a checksummed address, got {self.owner!r}")
        _uint("collateral", self.collateral, 128)
        _uint("nonce", self.nonce, 64)


@dataclass(frozen=True, slots=True)
class Position:
    """An isolated position leaf (type 2). ``equity(mark) = quote + notional(size, mark)``."""

    account_id: int
    market_id: int
    size: int
    quote: int
    basis: int
    funding_index: int

    def __post_init__(self) -> None:
        a, m, size, q, b, f = (
            self.account_id, self.market_id, self.size, self.quote, self.basis, self.funding_index
        )
        if (
            type(a) is int and type(m) is int and type(size) is int and type(q) is int
            and type(b) is int and type(f) is int
            and 0 <= a < MAX_ACCOUNTS and 0 <= m < MAX_MARKETS and -_I64 <= size < _I64
            and -_I128 <= q < _I128 and -_I128 <= b < _I128 and -_I128 <= f < _I128
        ):
            return
        self._validate()

    def _validate(self) -> None:
        """Field by field, in order: raises the first error."""
        _uint("account_id", self.account_id, 32)
        _bounded("account_id", self.account_id, MAX_ACCOUNTS)
        _uint("market_id", self.market_id, 16)
        _bounded("market_id", self.market_id, MAX_MARKETS)
        _sint("size", self.size, 64)
        _sint("quote", self.quote, 128)
        _sint("basis", self.basis, 128)
        _sint("funding_index", self.funding_index, 128)

    @property
    def is_empty(self) -> bool:
        """Flat with no quote: the slot is deleted."""
        return self.size == 0 and self.quote == 0

    def notional(self, mark: int, market: Market) -> int:
        """Signed value of the size at ``mark`` (floored)."""
        return arith.notional(self.size, mark, market.notional_exp)

    def equity(self, mark: int, market: Market) -> int:
        """``quote + notional(size, mark)``."""
        return self.quote + arith.notional(self.size, mark, market.notional_exp)

    def initial_margin(self, mark: int, market: Market) -> int:
        """``ceil(|notional(size, mark)| * imf / 1e6)``."""
        return arith.margin_requirement(self.notional(mark, market), market.imf_ppm)

    def maintenance_margin(self, mark: int, market: Market) -> int:
        """``ceil(|notional(size, mark)| * mmf / 1e6)``."""
        return arith.margin_requirement(self.notional(mark, market), market.mmf_ppm)


@dataclass(frozen=True, slots=True)
class Exchange:
    """The exchange leaf (type 4, v2): insurance fund, fees, account counter, queue cursors, and
    the global withdrawals tree (its root, the number of leaves and the sum of their amounts,
    all cumulative since genesis)."""

    insurance_fund: int
    fee_balance: int
    next_account_id: int
    deposit_cursor: int
    forced_cursor: int
    withdrawals_root: bytes
    withdrawal_count: int
    withdrawal_total: int

    def __post_init__(self) -> None:
        fund, fees, nxt, dc, fc = (
            self.insurance_fund,
            self.fee_balance,
            self.next_account_id,
            self.deposit_cursor,
            self.forced_cursor,
        )
        root, count, total = self.withdrawals_root, self.withdrawal_count, self.withdrawal_total
        if (
            type(fund) is int and type(fees) is int and type(nxt) is int and type(dc) is int
            and type(fc) is int and type(root) is bytes and type(count) is int
            and type(total) is int
            and -_I128 <= fund < _I128 and 0 <= fees < _U128 and 0 <= nxt <= MAX_ACCOUNTS
            and 0 <= dc < _U64 and 0 <= fc < _U64 and len(root) == 32
            and 0 <= count <= WITHDRAWALS_CAPACITY and 0 <= total < _U128
        ):
            return
        self._validate()

    def _validate(self) -> None:
        """Field by field, in order: raises the first error."""
        _sint("insurance_fund", self.insurance_fund, 128)
        _uint("fee_balance", self.fee_balance, 128)
        _uint("next_account_id", self.next_account_id, 32)
        _bounded("next_account_id", self.next_account_id, MAX_ACCOUNTS + 1)
        _uint("deposit_cursor", self.deposit_cursor, 64)
        _uint("forced_cursor", self.forced_cursor, 64)
        if type(self.withdrawals_root) is not bytes:
            raise TypeError(
                f"withdrawals_root must be bytes, got {type(self.withdrawals_root).__name__}"
            )
        if len(self.withdrawals_root) != 32:
            raise ValueError(f"withdrawals_root must be 32 bytes, got {len(self.withdrawals_root)}")
        _uint("withdrawal_count", self.withdrawal_count, 64)
        _bounded("withdrawal_count", self.withdrawal_count, WITHDRAWALS_CAPACITY + 1)
        _uint("withdrawal_total", self.withdrawal_total, 128)

    @classmethod
    def genesis(cls) -> Exchange:
        """The genesis exchange leaf: zeros and the empty withdrawals tree's root ``Z[32]``."""
        return cls(0, 0, 0, 0, 0, EMPTY_WITHDRAWALS_ROOT, 0, 0)


@dataclass(frozen=True, slots=True)
class Order:
    """An order slot leaf (type 5): the order of ``account_id`` with ``nonce`` in slot
    ``nonce % 64``, and how much of it has filled.

    An order is *live* while ``filled < size``. Closing it (cancel, IOC/FOK done) sets
    ``size = filled``. A *tombstone* (``size == 0``, every order field zero) reserves a nonce that
    was cancelled before it was ever registered, so it can never be registered later.
    """

    account_id: int
    slot: int
    nonce: int
    market_id: int
    is_buy: bool
    price: int
    size: int
    filled: int
    time_in_force: int
    flags: int
    expiry: int

    def __post_init__(self) -> None:
        a, slot, nonce, m, price, size, filled, tif, flags, expiry = (
            self.account_id,
            self.slot,
            self.nonce,
            self.market_id,
            self.price,
            self.size,
            self.filled,
            self.time_in_force,
            self.flags,
            self.expiry,
        )
        if (
            type(a) is int and type(slot) is int and type(nonce) is int and type(m) is int
            and type(self.is_buy) is bool and type(price) is int and type(size) is int
            and type(filled) is int and type(tif) is int and type(flags) is int
            and type(expiry) is int
            and 0 <= a < MAX_ACCOUNTS and 0 <= nonce < _U64 and slot == nonce % ORDER_SLOTS
            and 0 <= m < MAX_MARKETS and 0 <= price < _U64 and 0 <= filled <= size < _U64
            and 0 <= tif <= TIF_FOK and 0 <= flags < _U8 and not flags & ~ORDER_FLAGS_MASK
            and 0 <= expiry < _U64
        ):
            return
        self._validate()

    def _validate(self) -> None:
        """Field by field, in order: raises the first error."""
        _uint("account_id", self.account_id, 32)
        _bounded("account_id", self.account_id, MAX_ACCOUNTS)
        _uint("slot", self.slot, 8)
        _uint("nonce", self.nonce, 64)
        if self.slot != self.nonce % ORDER_SLOTS:
            raise ValueError(f"slot {self.slot} != nonce {self.nonce} % {ORDER_SLOTS}")
        _uint("market_id", self.market_id, 16)
        _bounded("market_id", self.market_id, MAX_MARKETS)
        if type(self.is_buy) is not bool:
            raise TypeError(f"is_buy must be a bool, got {type(self.is_buy).__name__}")
        _uint("price", self.price, 64)
        _uint("size", self.size, 64)
        _uint("filled", self.filled, 64)
        if self.filled > self.size:
            raise ValueError(f"filled {self.filled} > size {self.size}")
        _uint("time_in_force", self.time_in_force, 8)
        _bounded("time_in_force", self.time_in_force, TIF_FOK + 1)
        _uint("flags", self.flags, 8)
        if self.flags & ~ORDER_FLAGS_MASK:
            raise ValueError(f"unknown order flags {self.flags:#x}")
        _uint("expiry", self.expiry, 64)

    @property
    def live(self) -> bool:
        """It can still fill."""
        return self.filled < self.size

    @property
    def remaining(self) -> int:
        return self.size - self.filled

    @property
    def post_only(self) -> bool:
        return bool(self.flags & FLAG_POST_ONLY)

    @property
    def reduce_only(self) -> bool:
        return bool(self.flags & FLAG_REDUCE_ONLY)

    @classmethod
    def tombstone(cls, account_id: int, nonce: int) -> Order:
        """The closed, empty order that reserves ``nonce`` (a cancel before registration)."""
        return cls(account_id, nonce % ORDER_SLOTS, nonce, 0, False, 0, 0, 0, 0, 0, 0)


Leaf = Account | Position | Market | Exchange | Order
