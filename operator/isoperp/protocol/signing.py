"""EIP-712 signed requests (docs/PROTOCOL.md, section 3.1): digests, signing and fast recovery.

Owners sign withdrawals, margin moves, orders and cancels; the oracle key signs prices. All use
the same domain. ``request_digest`` gives the digest of any signed transition, ``sign_request``
returns the transition with its signature filled in (for tests, the CLI and bots).

Digests are computed directly with keccak (the same bytes Solidity hashes); recovery uses coincurve,
~100x faster than eth-keys' pure-Python backend. Signatures are 65 bytes ``r ‖ s ‖ v``
with v in {27, 28} and low s (EIP-2): anything else is rejected, so signatures are not malleable.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import TypeVar

import coincurve

from isoperp.errors import ProtocolError
from isoperp.hashing import keccak256
from isoperp.ledger.model import eip55_from_lower_hex
from isoperp.ledger.transitions import (
    CancelOrder,
    MarginTransfer,
    PlaceOrder,
    PriceUpdate,
    SignedRequest,
    Withdraw,
)
from isoperp.protocol.constants import EIP712_NAME, EIP712_VERSION

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SECP256K1_HALF_N = SECP256K1_N // 2

DOMAIN_TYPEHASH = keccak256(
    b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
WITHDRAWAL_TYPEHASH = keccak256(
    b"Withdrawal(uint32 accountId,address recipient,uint128 amount,uint64 nonce)"
)
MARGIN_TRANSFER_TYPEHASH = keccak256(
    b"MarginTransfer(uint32 accountId,uint16 marketId,int128 amount,uint64 nonce)"
)
ORDER_TYPEHASH = keccak256(
    b"Order(uint32 accountId,uint16 marketId,bool isBuy,uint64 price,uint64 size,"
    b"uint8 timeInForce,uint8 flags,uint64 nonce,uint64 expiry)"
)
CANCEL_TYPEHASH = keccak256(b"Cancel(uint32 accountId,uint64 nonce)")
PRICE_TYPEHASH = keccak256(b"Price(uint16 marketId,uint64 price,uint64 timestamp)")

NO_SIGNATURE = b"\x00" * 65
"""The signature field of the insurance account's orders and cancels (the operator's own)."""

_Signed = TypeVar("_Signed", Withdraw, MarginTransfer, PlaceOrder, CancelOrder, PriceUpdate)


def _word(value: int, *, signed: bool = False) -> bytes:
    return value.to_bytes(32, "big", signed=signed)


_WORD_ONE = _word(1)
_WORD_ZERO = _word(0)


def _address_word(address: str) -> bytes:
    raw = bytes.fromhex(address[2:] if address.startswith("0x") else address)
    if len(raw) != 20:
        raise ProtocolError(f"not a 20-byte address: {address!r}")
    return b"\x00" * 12 + raw


@dataclass(frozen=True, slots=True)
class Domain:
    """The EIP-712 domain: chain id and the Settlement contract's address."""

    chain_id: int
    verifying_contract: str
    separator: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        separator = keccak256(
            DOMAIN_TYPEHASH
            + keccak256(EIP712_NAME.encode())
            + keccak256(EIP712_VERSION.encode())
            + _word(self.chain_id)
            + _address_word(self.verifying_contract)
        )
        object.__setattr__(self, "separator", separator)


def withdrawal_struct_hash(account_id: int, recipient: str, amount: int, nonce: int) -> bytes:
    return keccak256(
        WITHDRAWAL_TYPEHASH
        + _word(account_id)
        + _address_word(recipient)
        + _word(amount)
        + _word(nonce)
    )


def margin_transfer_struct_hash(account_id: int, market_id: int, amount: int, nonce: int) -> bytes:
    return keccak256(
        MARGIN_TRANSFER_TYPEHASH
        + _word(account_id)
        + _word(market_id)
        + _word(amount, signed=True)
        + _word(nonce)
    )


def order_struct_hash(o: PlaceOrder) -> bytes:
    """``hashStruct(Order(accountId, marketId, isBuy, price, size, timeInForce, flags, nonce,
    expiry))``."""
    return keccak256(
        b"".join(
            (
                ORDER_TYPEHASH,
                o.account_id.to_bytes(32, "big"),
                o.market_id.to_bytes(32, "big"),
                _WORD_ONE if o.is_buy else _WORD_ZERO,
                o.price.to_bytes(32, "big"),
                o.size.to_bytes(32, "big"),
                o.time_in_force.to_bytes(32, "big"),
                o.flags.to_bytes(32, "big"),
                o.nonce.to_bytes(32, "big"),
                o.expiry.to_bytes(32, "big"),
            )
        )
    )


def cancel_struct_hash(account_id: int, nonce: int) -> bytes:
    return keccak256(CANCEL_TYPEHASH + _word(account_id) + _word(nonce))


def price_struct_hash(market_id: int, price: int, timestamp: int) -> bytes:
    return keccak256(PRICE_TYPEHASH + _word(market_id) + _word(price) + _word(timestamp))


def typed_digest(domain: Domain, struct_hash: bytes) -> bytes:
    return keccak256(b"\x19\x01" + domain.separator + struct_hash)


def order_digest(domain: Domain, order: PlaceOrder) -> bytes:
    """The EIP-712 digest the account owner signs for an order."""
    return typed_digest(domain, order_struct_hash(order))


def cancel_digest(domain: Domain, cancel: CancelOrder) -> bytes:
    """The EIP-712 digest the account owner signs to cancel order ``nonce``."""
    return typed_digest(domain, cancel_struct_hash(cancel.account_id, cancel.nonce))


def price_digest(domain: Domain, price: PriceUpdate) -> bytes:
    """The EIP-712 digest the oracle key signs for a mark price."""
    return typed_digest(domain, price_struct_hash(price.market_id, price.price, price.timestamp))


def request_digest(domain: Domain, request: SignedRequest) -> bytes:
    """The EIP-712 digest of any signed transition (the signature field is ignored).

    Field values must fit their EIP-712 types (the ledger checks them before recovering).
    """
    if isinstance(request, Withdraw):
        struct = withdrawal_struct_hash(
            request.account_id, request.recipient, request.amount, request.nonce
        )
    elif isinstance(request, MarginTransfer):
        struct = margin_transfer_struct_hash(
            request.account_id, request.market_id, request.amount, request.nonce
        )
    elif isinstance(request, PlaceOrder):
        struct = order_struct_hash(request)
    elif isinstance(request, CancelOrder):
        struct = cancel_struct_hash(request.account_id, request.nonce)
    elif isinstance(request, PriceUpdate):
        struct = price_struct_hash(request.market_id, request.price, request.timestamp)
    else:
        raise TypeError(f"not a signed request: {type(request).__name__}")
    return typed_digest(domain, struct)


def sign_request(private_key: bytes, domain: Domain, request: _Signed) -> _Signed:
    """``request`` with its ``signature`` replaced by the signature of ``private_key``."""
    signature = sign_digest(private_key, request_digest(domain, request))
    return dataclasses.replace(request, signature=signature)


def sign_digest(private_key: bytes, digest: bytes) -> bytes:
    """Signs a 32-byte digest; returns ``r ‖ s ‖ v`` with v in {27, 28} (coincurve signs low-s)."""
    sig = coincurve.PrivateKey(private_key).sign_recoverable(digest, hasher=None)
    return sig[:64] + bytes([sig[64] + 27])


RECOVER_CACHE_SIZE = 65_536
"""Entries of ``recover_signer``'s cache (each ~0.4 kB: about 25 MB when full)."""


def recover_signer(digest: bytes, signature: bytes) -> str:
    """The checksummed signer of ``digest``; rejects malformed and malleable signatures
    (``ProtocolError``, code ``bad_signature``).

    Results are cached by ``(digest, signature)`` (bounded LRU): the exchange engine verifies an
    order at ingest and the ledger verifies it again when it registers the order before its
    first fill. Recovery is a pure function of the two byte strings, so a cached answer is the
    answer; rejections are not cached (they raise), and any other signature or digest is a
    different key. Arguments that are not ``bytes`` (bytearray, memoryview) bypass the cache.
    """
    if type(digest) is bytes and type(signature) is bytes:
        return _recover_cached(digest, signature)
    return _recover(digest, signature)


def _recover(digest: bytes, signature: bytes) -> str:
    if len(signature) != 65:
        raise ProtocolError(
            f"signature must be 65 bytes, got {len(signature)}", code="bad_signature"
        )
    v = signature[64]
    if v not in (27, 28):
        raise ProtocolError(f"signature v must be 27 or 28, got {v}", code="bad_signature")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    if not (0 < r < SECP256K1_N) or not (0 < s <= SECP256K1_HALF_N):
        raise ProtocolError("signature r/s out of range or high s", code="bad_signature")
    try:
        public = coincurve.PublicKey.from_signature_and_message(
            signature[:64] + bytes([v - 27]), digest, hasher=None
        )
    except Exception as exc:  # coincurve raises bare Exception on unrecoverable signatures
        raise ProtocolError(f"signature does not recover: {exc}", code="bad_signature") from exc
    address = keccak256(public.format(compressed=False)[1:])[-20:]
    return eip55_from_lower_hex(address.hex().encode("ascii"))


_recover_cached = functools.lru_cache(maxsize=RECOVER_CACHE_SIZE)(_recover)
