"""Request and response models of the HTTP API (pydantic, strict).

JSON field names are the camelCase names of the EIP-712 types (PROTOCOL section 3.1), so a
request body is exactly the signed message plus its ``signature``. Integer rules:

- Integers that fit a JSON double exactly (ids, market ids, time in force, flags, ppm values,
  unix seconds, counts) are JSON numbers.
- Every ``uint64``/``uint128``/``int128`` quantity — prices (ticks), sizes (lots), nonces,
  expiries, collateral and quote amounts (micro-USDC), funding indices — is a **decimal string**
  (``"600000"``, ``"-2500000"``; no sign on unsigned fields, no leading zeros, no exponent, no
  fraction), in requests and in responses alike: JSON numbers beyond 2^53 lose precision in
  most clients.

Nonces are accepted up to 2^63 - 1 (the journal stores them as SQLite integers).

Requests are strict: unknown fields, missing fields, a number where a string is expected (or the
reverse), ``true`` for an integer, floats and out-of-range values are refused with 400
``validation``. ``signature`` is ``0x`` followed by exactly 65 bytes of hex (``r ‖ s ‖ v``).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

from isoperp.ledger.model import checksum_address
from isoperp.protocol.constants import MAX_ACCOUNTS

_UNSIGNED = re.compile(r"(0|[1-9][0-9]*)")
_SIGNED = re.compile(r"(0|-?[1-9][0-9]*)")
_SIGNATURE = re.compile(r"0x[0-9a-fA-F]{130}")
UNSIGNED_PATTERN = r"^(0|[1-9][0-9]*)$"
SIGNED_PATTERN = r"^(0|-?[1-9][0-9]*)$"
NONZERO_PATTERN = r"^-?[1-9][0-9]*$"
POSITIVE_PATTERN = r"^[1-9][0-9]*$"
SIGNATURE_PATTERN = r"^0x[0-9a-fA-F]{130}$"
ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
U64_MAX = (1 << 64) - 1
U128_MAX = (1 << 128) - 1
I128_MIN, I128_MAX = -(1 << 127), (1 << 127) - 1
NONCE_MAX = (1 << 63) - 1
"""The protocol's nonces are uint64, but the journal (SQLite INTEGER) holds at most 2^63 - 1."""


def _decimal(value: object, *, signed: bool, low: int, high: int, nonzero: bool) -> int:
    if not isinstance(value, str):
        raise ValueError('must be a decimal string, e.g. "1000"')
    pattern = _SIGNED if signed else _UNSIGNED
    if len(value) > 41 or pattern.fullmatch(value) is None:
        raise ValueError("must be a decimal integer string without exponent or fraction")
    number = int(value)
    if not low <= number <= high:
        raise ValueError(f"must be between {low} and {high}")
    if nonzero and number == 0:
        raise ValueError("must not be 0")
    return number


def _decimal_type(
    what: str, *, low: int = 0, high: int = U64_MAX, nonzero: bool = False
) -> tuple[BeforeValidator, WithJsonSchema]:
    """(parser, JSON schema) of a decimal-string integer in ``[low, high]``."""
    signed = low < 0

    def parse(value: object) -> int:
        return _decimal(value, signed=signed, low=low, high=high, nonzero=nonzero)

    if nonzero:
        pattern = NONZERO_PATTERN if signed else POSITIVE_PATTERN
    else:
        pattern = SIGNED_PATTERN if signed else UNSIGNED_PATTERN
    schema = {
        "type": "string",
        "pattern": pattern,
        "maxLength": 41,
        "description": f"{what}: a decimal integer string in [{low}, {high}]"
        + (", not 0" if nonzero and signed else ""),
    }
    return BeforeValidator(parse), WithJsonSchema(schema)


def _signature(value: object) -> bytes:
    if not isinstance(value, str) or _SIGNATURE.fullmatch(value) is None:
        raise ValueError("must be 0x followed by 130 hex digits (65 bytes r ‖ s ‖ v)")
    return bytes.fromhex(value[2:])


def _address(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a 0x-prefixed 20-byte hex address")
    return checksum_address(value)  # ValueError for a bad EIP-55 checksum


_U64 = _decimal_type("uint64")
_PRICE = _decimal_type("price in ticks of the market (uint64)")
_SIZE = _decimal_type("size in lots of the market (uint64)")
_NONCE = _decimal_type(
    "nonce (uint64; below 2^63: the operator's journal keeps nonces as SQLite integers)",
    high=NONCE_MAX,
)
_EXPIRY = _decimal_type("unix seconds after which the order is void, 0 = never (uint64)")
_WITHDRAW = _decimal_type("micro-USDC (uint128)", low=1, high=U128_MAX, nonzero=True)
_MARGIN = _decimal_type(
    "micro-USDC (int128); > 0 moves into the position, < 0 out of it",
    low=I128_MIN,
    high=I128_MAX,
    nonzero=True,
)
U64 = Annotated[int, _U64[0], _U64[1]]
Price = Annotated[int, _PRICE[0], _PRICE[1]]
Size = Annotated[int, _SIZE[0], _SIZE[1]]
Nonce = Annotated[int, _NONCE[0], _NONCE[1]]
Expiry = Annotated[int, _EXPIRY[0], _EXPIRY[1]]
WithdrawAmount = Annotated[int, _WITHDRAW[0], _WITHDRAW[1]]
MarginAmount = Annotated[int, _MARGIN[0], _MARGIN[1]]
Signature = Annotated[
    bytes,
    BeforeValidator(_signature),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": SIGNATURE_PATTERN,
            "description": "EIP-712 signature of the account owner, 0x + 65 bytes r ‖ s ‖ v",
        }
    ),
]
Address = Annotated[
    str,
    BeforeValidator(_address),
    WithJsonSchema(
        {"type": "string", "pattern": ADDRESS_PATTERN, "description": "0x address (EIP-55)"}
    ),
]
AccountId = Annotated[int, Field(ge=0, lt=MAX_ACCOUNTS, description="account id (uint32 < 2^24)")]
MarketId = Annotated[int, Field(ge=0, le=0xFFFF, description="market id (uint16)")]


class _Request(BaseModel):
    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
    )


class OrderRequest(_Request):
    """A signed order (EIP-712 ``Order``)."""

    account_id: AccountId
    market_id: MarketId
    is_buy: bool
    price: Price
    size: Size
    time_in_force: Annotated[int, Field(ge=0, le=2, description="0 GTC, 1 IOC, 2 FOK")]
    flags: Annotated[int, Field(ge=0, le=3, description="bit 0 post-only, bit 1 reduce-only")]
    nonce: Nonce
    expiry: Expiry
    signature: Signature


class CancelRequest(_Request):
    """A signed cancel of order ``nonce`` (EIP-712 ``Cancel``); burns the nonce if unused."""

    account_id: AccountId
    nonce: Nonce
    signature: Signature


class WithdrawalRequest(_Request):
    """A signed withdrawal of free collateral to ``recipient`` on L1 (EIP-712 ``Withdrawal``)."""

    account_id: AccountId
    recipient: Address
    amount: WithdrawAmount
    nonce: Nonce
    signature: Signature


class MarginRequest(_Request):
    """A signed margin move (EIP-712 ``MarginTransfer``): ``amount > 0`` moves free collateral
    into the isolated position of ``marketId``, ``< 0`` moves it back out."""

    account_id: AccountId
    market_id: MarketId
    amount: MarginAmount
    nonce: Nonce
    signature: Signature


# ---------------------------------------------------------------------------------- responses


class _Response(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, serialize_by_alias=True
    )


Dec = Annotated[str, Field(pattern=SIGNED_PATTERN, description="decimal integer string")]


class ErrorDetail(_Response):
    code: str = Field(description="machine-readable error code (see the table in the API docs)")
    message: str = Field(description="one line for humans")
    request_id: int | None = Field(
        default=None, description="for `duplicate`: the journal id of the original request"
    )


class ErrorResponse(_Response):
    error: ErrorDetail


class Accepted(_Response):
    """The request is journaled (durably) and will be applied in the operator's next cycle."""

    request_id: int = Field(description="journal id: follow it in /v1/accounts/{id}/requests")
    kind: Literal["order", "cancel", "withdrawal", "margin"]
    status: Literal["pending"] = "pending"
    account_id: int
    nonce: Dec


class MarketView(_Response):
    market_id: int
    symbol: str
    price_decimals: int = Field(description="a price of 1 tick is 10^-priceDecimals USD")
    size_decimals: int = Field(description="a size of 1 lot is 10^-sizeDecimals of the base asset")
    mark_price: Dec = Field(description="ticks")
    mark_time: int
    funding_index: Dec
    funding_time: int
    imf_ppm: int
    mmf_ppm: int
    notional_exp: int
    maker_fee_ppm: int
    taker_fee_ppm: int
    min_size: Dec
    size_step: Dec
    price_tick: Dec
    open_interest: Dec = Field(description="sum of long sizes, lots")


class BookLevel(_Response):
    price: Dec = Field(description="ticks")
    size: Dec = Field(description="lots resting at this price")


class BookView(_Response):
    market_id: int
    symbol: str
    mark_price: Dec
    bids: list[BookLevel] = Field(description="best (highest) first")
    asks: list[BookLevel] = Field(description="best (lowest) first")
    time: int


class TradeModel(_Response):
    market_id: int
    symbol: str
    price: Dec
    size: Dec
    side: Literal["buy", "sell"] | None = Field(description="the taker's side")
    maker_account_id: int
    taker_account_id: int = Field(description="for a liquidation: the liquidated account")
    timestamp: int
    seq: int = Field(description="the checkpoint that carries the fill")
    liquidation: bool


class AccountModel(_Response):
    account_id: int
    owner: str
    collateral: Dec = Field(description="free collateral at the latest checkpoint, micro-USDC")
    available: Dec = Field(
        description="collateral less pending withdrawals and margin moves into positions"
    )
    nonce: Dec = Field(description="applied withdrawals and margin moves (latest checkpoint)")
    next_nonce: Dec = Field(
        description="the nonce the next withdrawal or margin move must carry (counts pending ones)"
    )
    next_order_nonce: Dec | None = Field(
        description="the smallest unused order nonce whose slot is free (null: all 64 busy)"
    )
    pending_requests: int


class PositionModel(_Response):
    market_id: int
    symbol: str
    size: Dec = Field(description="lots, long > 0")
    quote: Dec = Field(description="micro-USDC")
    basis: Dec = Field(description="signed cost of the open size, micro-USDC")
    entry_price: Dec | None = Field(description="basis / size in ticks (rounded); null when flat")
    mark_price: Dec
    pending_funding: Dec
    equity: Dec
    unrealized_pnl: Dec
    initial_margin: Dec
    maintenance_margin: Dec
    margin_ratio_ppm: Dec | None = Field(description="equity * 1e6 / MMR; below 1e6 liquidatable")
    liquidation_price: Dec | None = Field(description="mark at which equity = MMR (ticks)")
    bankruptcy_price: Dec | None = Field(description="price at which equity = 0 (ticks)")
    liquidatable: bool


class OrderModel(_Response):
    request_id: int
    nonce: Dec
    market_id: int
    symbol: str
    is_buy: bool
    price: Dec
    size: Dec
    filled: Dec
    time_in_force: int
    flags: int
    expiry: Dec
    status: str = Field(
        description="pending, open, filled, cancelled, expired, done (IOC rest) or rejected"
    )
    reason: str | None
    seq: int | None


class RequestModel(_Response):
    request_id: int
    kind: Literal["order", "cancel", "withdrawal", "margin", "other"]
    nonce: Dec | None
    market_id: int | None
    amount: Dec | None
    status: str
    reason: str | None
    seq: int | None = Field(description="the checkpoint that included it")
    slot: int | None = Field(description="withdrawals: the leaf's global withdrawals-tree index")


class CheckpointModel(_Response):
    seq: int
    state_root: str
    posted_at: int
    finalizes_at: int
    finalized: bool
    status: Literal["pending", "finalized"]
    seconds_to_finality: int = Field(description="0 once finalized")
    withdrawal_count: int
    tx_hash: str


class CheckpointsResponse(_Response):
    latest_seq: int | None
    finalized_seq: int | None
    checkpoints: list[CheckpointModel] = Field(description="newest first")


class ForcedRequestModel(_Response):
    index: int
    kind: str
    requester: str
    account_id: int
    market_id: int
    amount: Dec
    requested_at: int
    status: Literal["pending", "served", "overdue"]
    deadline: int | None


class HealthModel(_Response):
    status: Literal["ok"]
    time: int
    latest_seq: int | None
    state_root: str
    markets: int
    feed_subscribers: int
