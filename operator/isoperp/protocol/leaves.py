"""State-tree leaves (docs/PROTOCOL.md, section 2): index layout and ``abi.encode`` leaf encodings.

``index = kind << 30 | account << 6 | sub``. Every leaf is ``abi.encode`` of a static tuple: one
32-byte big-endian word per field, unsigned fields zero-padded, signed fields sign-extended
two's complement, addresses left-padded with zeros. The first word is the leaf type.

The encoders build the words directly with ``int.to_bytes`` (no ABI library on the hot path);
the tests hold them against ``eth_abi.encode``. ``decode_leaf`` accepts only canonical
encodings: the right word count for the type, every word in range for its Solidity type (zero
padding, sign extension), and the semantic bounds of the model (e.g. account ids ``< 2^24``).
Anything else raises ``ProtocolError``.
"""

from __future__ import annotations

from typing import Final

from isoperp.errors import ProtocolError
from isoperp.ledger.model import (
    Account,
    Exchange,
    Leaf,
    Market,
    Order,
    Position,
    checksum_address,
)
from isoperp.protocol.constants import (
    ACCOUNT_SHIFT,
    GLOBAL_EXCHANGE,
    GLOBAL_MARKETS,
    KIND_ACCOUNT,
    KIND_GLOBAL,
    KIND_ORDER,
    KIND_POSITION,
    KIND_SHIFT,
    LEAF_ACCOUNT,
    LEAF_EXCHANGE,
    LEAF_MARKET,
    LEAF_ORDER,
    LEAF_POSITION,
    MAX_ACCOUNTS,
    MAX_MARKETS,
    ORDER_SLOTS,
)
from isoperp.tree.merkle import hash_leaf

_SUB_LIMIT: Final = 1 << ACCOUNT_SHIFT
_POSITION_BASE: Final = KIND_POSITION << KIND_SHIFT
_ORDER_BASE: Final = KIND_ORDER << KIND_SHIFT
_MARKET_BASE: Final = KIND_GLOBAL << KIND_SHIFT | GLOBAL_MARKETS << ACCOUNT_SHIFT

# ------------------------------------------------------------------------------------------------
# Index layout


def _check_id(name: str, value: object, limit: int) -> int:
    if type(value) is not int or not 0 <= value < limit:
        raise ProtocolError(f"{name} {value!r} out of range [0, {limit})", code="bad_index")
    return value


def leaf_index(kind: int, account: int, sub: int) -> int:
    """``kind << 30 | account << 6 | sub`` with ``kind < 4``, ``account < 2^24``, ``sub < 64``."""
    if (
        type(kind) is int
        and type(account) is int
        and type(sub) is int
        and 0 <= kind < 4
        and 0 <= account < MAX_ACCOUNTS
        and 0 <= sub < _SUB_LIMIT
    ):
        return kind << KIND_SHIFT | account << ACCOUNT_SHIFT | sub
    _check_id("kind", kind, 4)
    _check_id("account", account, MAX_ACCOUNTS)
    _check_id("sub", sub, _SUB_LIMIT)
    return kind << KIND_SHIFT | account << ACCOUNT_SHIFT | sub


def split_index(index: int) -> tuple[int, int, int]:
    """``(kind, account, sub)`` of a state-tree index ``< 2^32``."""
    _check_id("index", index, 1 << (KIND_SHIFT + 2))
    return index >> KIND_SHIFT, (index >> ACCOUNT_SHIFT) % MAX_ACCOUNTS, index % _SUB_LIMIT


def account_index(account_id: int) -> int:
    """Index of account ``account_id``'s leaf (kind 0, sub 0)."""
    if type(account_id) is int and 0 <= account_id < MAX_ACCOUNTS:
        return KIND_ACCOUNT << KIND_SHIFT | account_id << ACCOUNT_SHIFT
    return leaf_index(KIND_ACCOUNT, _check_id("account_id", account_id, MAX_ACCOUNTS), 0)


def position_index(account_id: int, market_id: int) -> int:
    """Index of the isolated position of ``account_id`` in ``market_id`` (kind 1)."""
    if (
        type(account_id) is int
        and type(market_id) is int
        and 0 <= account_id < MAX_ACCOUNTS
        and 0 <= market_id < MAX_MARKETS
    ):
        return _POSITION_BASE | account_id << ACCOUNT_SHIFT | market_id
    return leaf_index(
        KIND_POSITION,
        _check_id("account_id", account_id, MAX_ACCOUNTS),
        _check_id("market_id", market_id, MAX_MARKETS),
    )


def order_index(account_id: int, slot: int) -> int:
    """Index of order slot ``slot`` (``nonce % 64``) of ``account_id`` (kind 2)."""
    if (
        type(account_id) is int
        and type(slot) is int
        and 0 <= account_id < MAX_ACCOUNTS
        and 0 <= slot < ORDER_SLOTS
    ):
        return _ORDER_BASE | account_id << ACCOUNT_SHIFT | slot
    return leaf_index(
        KIND_ORDER,
        _check_id("account_id", account_id, MAX_ACCOUNTS),
        _check_id("slot", slot, ORDER_SLOTS),
    )


def market_index(market_id: int) -> int:
    """Index of market ``market_id``'s leaf (kind 3, account field 0)."""
    if type(market_id) is int and 0 <= market_id < MAX_MARKETS:
        return _MARKET_BASE | market_id
    return leaf_index(KIND_GLOBAL, GLOBAL_MARKETS, _check_id("market_id", market_id, MAX_MARKETS))


EXCHANGE_INDEX: Final = KIND_GLOBAL << KIND_SHIFT | GLOBAL_EXCHANGE << ACCOUNT_SHIFT
"""Index of the exchange leaf (kind 3, account field 1, sub 0)."""


def index_of(leaf: Leaf) -> int:
    """The state-tree index where ``leaf`` lives."""
    if isinstance(leaf, Position):
        return position_index(leaf.account_id, leaf.market_id)
    if isinstance(leaf, Account):
        return account_index(leaf.account_id)
    if isinstance(leaf, Market):
        return market_index(leaf.market_id)
    if isinstance(leaf, Exchange):
        return EXCHANGE_INDEX
    if isinstance(leaf, Order):
        return order_index(leaf.account_id, leaf.slot)
    raise TypeError(f"not a leaf: {type(leaf).__name__}")


# ------------------------------------------------------------------------------------------------
# Encoding


def _u(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _s(value: int) -> bytes:
    return value.to_bytes(32, "big", signed=True)


_ADDRESS_PAD: Final = b"\x00" * 12
_W_ACCOUNT: Final = _u(LEAF_ACCOUNT)
_W_POSITION: Final = _u(LEAF_POSITION)
_W_MARKET: Final = _u(LEAF_MARKET)
_W_EXCHANGE: Final = _u(LEAF_EXCHANGE)
_W_ORDER: Final = _u(LEAF_ORDER)
_TRUE: Final = _u(1)
_FALSE: Final = _u(0)


def encode_account(a: Account) -> bytes:
    """``abi.encode(uint8 1, uint32 accountId, address owner, uint128 collateral,
    uint64 nonce)``."""
    return b"".join(
        (
            _W_ACCOUNT,
            a.account_id.to_bytes(32, "big"),
            _ADDRESS_PAD + bytes.fromhex(a.owner[2:]),
            a.collateral.to_bytes(32, "big"),
            a.nonce.to_bytes(32, "big"),
        )
    )


def encode_position(p: Position) -> bytes:
    """``abi.encode(uint8 2, uint32 accountId, uint16 marketId, int64 size, int128 quote,
    int128 basis, int128 fundingIndex)``."""
    return b"".join(
        (
            _W_POSITION,
            p.account_id.to_bytes(32, "big"),
            p.market_id.to_bytes(32, "big"),
            p.size.to_bytes(32, "big", signed=True),
            p.quote.to_bytes(32, "big", signed=True),
            p.basis.to_bytes(32, "big", signed=True),
            p.funding_index.to_bytes(32, "big", signed=True),
        )
    )


def encode_market(m: Market) -> bytes:
    """``abi.encode(uint8 3, uint16 marketId, uint64 markPrice, uint64 markTime,
    int128 fundingIndex, uint64 fundingTime, uint32 imfPpm, uint32 mmfPpm, int8 notionalExp,
    int32 makerFeePpm, int32 takerFeePpm, uint64 minSize, uint64 sizeStep, uint64 priceTick,
    uint64 openInterest)``."""
    return b"".join(
        (
            _W_MARKET,
            m.market_id.to_bytes(32, "big"),
            m.mark_price.to_bytes(32, "big"),
            m.mark_time.to_bytes(32, "big"),
            m.funding_index.to_bytes(32, "big", signed=True),
            m.funding_time.to_bytes(32, "big"),
            m.imf_ppm.to_bytes(32, "big"),
            m.mmf_ppm.to_bytes(32, "big"),
            m.notional_exp.to_bytes(32, "big", signed=True),
            m.maker_fee_ppm.to_bytes(32, "big", signed=True),
            m.taker_fee_ppm.to_bytes(32, "big", signed=True),
            m.min_size.to_bytes(32, "big"),
            m.size_step.to_bytes(32, "big"),
            m.price_tick.to_bytes(32, "big"),
            m.open_interest.to_bytes(32, "big"),
        )
    )


def encode_exchange(e: Exchange) -> bytes:
    """``abi.encode(uint8 4, int128 insuranceFund, uint128 feeBalance, uint32 nextAccountId,
    uint64 depositCursor, uint64 forcedCursor, bytes32 withdrawalsRoot, uint64 withdrawalCount,
    uint128 withdrawalTotal)`` (exchange leaf v2)."""
    return b"".join(
        (
            _W_EXCHANGE,
            e.insurance_fund.to_bytes(32, "big", signed=True),
            e.fee_balance.to_bytes(32, "big"),
            e.next_account_id.to_bytes(32, "big"),
            e.deposit_cursor.to_bytes(32, "big"),
            e.forced_cursor.to_bytes(32, "big"),
            e.withdrawals_root,
            e.withdrawal_count.to_bytes(32, "big"),
            e.withdrawal_total.to_bytes(32, "big"),
        )
    )


def encode_order(o: Order) -> bytes:
    """``abi.encode(uint8 5, uint32 accountId, uint8 slot, uint64 nonce, uint16 marketId,
    bool isBuy, uint64 price, uint64 size, uint64 filled, uint8 timeInForce, uint8 flags,
    uint64 expiry)``."""
    return b"".join(
        (
            _W_ORDER,
            o.account_id.to_bytes(32, "big"),
            o.slot.to_bytes(32, "big"),
            o.nonce.to_bytes(32, "big"),
            o.market_id.to_bytes(32, "big"),
            _TRUE if o.is_buy else _FALSE,
            o.price.to_bytes(32, "big"),
            o.size.to_bytes(32, "big"),
            o.filled.to_bytes(32, "big"),
            o.time_in_force.to_bytes(32, "big"),
            o.flags.to_bytes(32, "big"),
            o.expiry.to_bytes(32, "big"),
        )
    )


def encode_leaf(leaf: Leaf) -> bytes:
    """The leaf bytes of any model object."""
    if isinstance(leaf, Position):
        return encode_position(leaf)
    if isinstance(leaf, Order):
        return encode_order(leaf)
    if isinstance(leaf, Account):
        return encode_account(leaf)
    if isinstance(leaf, Market):
        return encode_market(leaf)
    if isinstance(leaf, Exchange):
        return encode_exchange(leaf)
    raise TypeError(f"not a leaf: {type(leaf).__name__}")


def leaf_hash(leaf: Leaf) -> bytes:
    """``keccak256(0x00 ‖ encode_leaf(leaf))``."""
    return hash_leaf(encode_leaf(leaf))


# ------------------------------------------------------------------------------------------------
# Decoding

# Word layouts after the leaf-type word: ("u", bits) unsigned, ("s", bits) signed,
# ("a", 160) address, ("b", 1) bool, ("h", 256) bytes32.
_Layout = tuple[tuple[str, int], ...]
_LAYOUTS: Final[dict[int, _Layout]] = {
    LEAF_ACCOUNT: (("u", 32), ("a", 160), ("u", 128), ("u", 64)),
    LEAF_POSITION: (("u", 32), ("u", 16), ("s", 64), ("s", 128), ("s", 128), ("s", 128)),
    LEAF_MARKET: (
        ("u", 16),
        ("u", 64),
        ("u", 64),
        ("s", 128),
        ("u", 64),
        ("u", 32),
        ("u", 32),
        ("s", 8),
        ("s", 32),
        ("s", 32),
        ("u", 64),
        ("u", 64),
        ("u", 64),
        ("u", 64),
    ),
    LEAF_EXCHANGE: (
        ("s", 128),
        ("u", 128),
        ("u", 32),
        ("u", 64),
        ("u", 64),
        ("h", 256),
        ("u", 64),
        ("u", 128),
    ),
    LEAF_ORDER: (
        ("u", 32),
        ("u", 8),
        ("u", 64),
        ("u", 16),
        ("b", 1),
        ("u", 64),
        ("u", 64),
        ("u", 64),
        ("u", 8),
        ("u", 8),
        ("u", 64),
    ),
}


def _decode_word(word: bytes, kind: str, bits: int, position: int) -> int | str | bool | bytes:
    if kind == "h":
        return word
    if kind == "b":
        flag = int.from_bytes(word, "big")
        if flag > 1:
            raise ProtocolError(f"word {position}: a bool must be 0 or 1", code="bad_leaf")
        return flag == 1
    if kind == "a":
        if word[:12] != _ADDRESS_PAD:
            raise ProtocolError(f"word {position}: address is not zero-padded", code="bad_leaf")
        return checksum_address(word[12:])
    if kind == "u":
        value = int.from_bytes(word, "big")
        if value >> bits:
            raise ProtocolError(f"word {position}: out of range for uint{bits}", code="bad_leaf")
        return value
    value = int.from_bytes(word, "big", signed=True)
    bound = 1 << (bits - 1)
    if not -bound <= value < bound:
        raise ProtocolError(f"word {position}: not a sign-extended int{bits}", code="bad_leaf")
    return value


def decode_leaf(data: bytes) -> Leaf:
    """The model object encoded by ``data``; rejects every non-canonical or out-of-range encoding.

    Decoded markets have an empty ``symbol`` (it is not part of the leaf).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ProtocolError(f"leaf bytes expected, got {type(data).__name__}", code="bad_leaf")
    data = bytes(data)
    if len(data) < 32 or len(data) % 32:
        raise ProtocolError(
            f"leaf length {len(data)} is not a whole number of words", code="bad_leaf"
        )
    leaf_type = int.from_bytes(data[:32], "big")
    layout = _LAYOUTS.get(leaf_type)
    if layout is None:
        raise ProtocolError(f"unknown leaf type {leaf_type}", code="bad_leaf")
    if len(data) != 32 * (1 + len(layout)):
        raise ProtocolError(
            f"leaf type {leaf_type} has {1 + len(layout)} words, got {len(data) // 32}",
            code="bad_leaf",
        )
    values = [
        _decode_word(data[32 * i : 32 * i + 32], kind, bits, i)
        for i, (kind, bits) in enumerate(layout, start=1)
    ]
    try:
        if leaf_type == LEAF_ACCOUNT:
            return Account(*values)  # type: ignore[arg-type]
        if leaf_type == LEAF_POSITION:
            return Position(*values)  # type: ignore[arg-type]
        if leaf_type == LEAF_MARKET:
            return Market(*values)  # type: ignore[arg-type]
        if leaf_type == LEAF_ORDER:
            return Order(*values)  # type: ignore[arg-type]
        return Exchange(*values)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"leaf type {leaf_type}: {exc}", code="bad_leaf") from exc


def solidity_struct(
    leaf: Account | Position | Market | Exchange,
) -> tuple[int | str | bytes, ...]:
    """The leaf as the Solidity LeafLib struct of its type (every field of the encoding but the
    leading leaf type, which LeafLib writes itself): the argument web3 passes for a leaf."""
    if isinstance(leaf, Account):
        return (leaf.account_id, leaf.owner, leaf.collateral, leaf.nonce)
    if isinstance(leaf, Position):
        return (
            leaf.account_id,
            leaf.market_id,
            leaf.size,
            leaf.quote,
            leaf.basis,
            leaf.funding_index,
        )
    if isinstance(leaf, Market):
        return (
            leaf.market_id,
            leaf.mark_price,
            leaf.mark_time,
            leaf.funding_index,
            leaf.funding_time,
            leaf.imf_ppm,
            leaf.mmf_ppm,
            leaf.notional_exp,
            leaf.maker_fee_ppm,
            leaf.taker_fee_ppm,
            leaf.min_size,
            leaf.size_step,
            leaf.price_tick,
            leaf.open_interest,
        )
    return (
        leaf.insurance_fund,
        leaf.fee_balance,
        leaf.next_account_id,
        leaf.deposit_cursor,
        leaf.forced_cursor,
        leaf.withdrawals_root,
        leaf.withdrawal_count,
        leaf.withdrawal_total,
    )
