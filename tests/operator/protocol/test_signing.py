"""EIP-712 digests of orders, cancels and prices against eth_account's reference encoder;
signing and strict recovery."""

from __future__ import annotations

import dataclasses

import pytest
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from hypothesis import given
from hypothesis import strategies as st

from isoperp.errors import ProtocolError
from isoperp.ledger.transitions import (
    CancelOrder,
    Deposit,
    MarginTransfer,
    PlaceOrder,
    PriceUpdate,
    Withdraw,
)
from isoperp.protocol.signing import (
    RECOVER_CACHE_SIZE,
    SECP256K1_N,
    Domain,
    cancel_digest,
    order_digest,
    price_digest,
    recover_signer,
    request_digest,
    sign_request,
)
from isoperp.protocol.signing import _recover_cached as _recover_cached

DOMAIN = Domain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
KEY = (0xB0B).to_bytes(32, "big")
SIGNER = Account.from_key(KEY).address
SIG = b"\x00" * 65

u = lambda bits: st.integers(0, (1 << bits) - 1)  # noqa: E731


def _reference(primary: str, fields: list[tuple[str, str]], message: dict) -> bytes:
    typed = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            primary: [{"name": n, "type": t} for n, t in fields],
        },
        "primaryType": primary,
        "domain": {
            "name": "isoperp",
            "version": "1",
            "chainId": DOMAIN.chain_id,
            "verifyingContract": DOMAIN.verifying_contract,
        },
        "message": message,
    }
    return bytes(_hash_eip191_message(encode_typed_data(full_message=typed)))


ORDER_FIELDS = [
    ("accountId", "uint32"),
    ("marketId", "uint16"),
    ("isBuy", "bool"),
    ("price", "uint64"),
    ("size", "uint64"),
    ("timeInForce", "uint8"),
    ("flags", "uint8"),
    ("nonce", "uint64"),
    ("expiry", "uint64"),
]


@given(
    account=u(32),
    market=u(16),
    is_buy=st.booleans(),
    price=u(64),
    size=u(64),
    tif=u(8),
    flags=u(8),
    nonce=u(64),
    expiry=u(64),
)
def test_order_digest_matches_eth_account(
    account, market, is_buy, price, size, tif, flags, nonce, expiry
) -> None:
    o = PlaceOrder(account, market, is_buy, price, size, tif, flags, nonce, expiry, SIG)
    message = dict(
        zip(
            [n for n, _ in ORDER_FIELDS],
            [account, market, is_buy, price, size, tif, flags, nonce, expiry],
            strict=True,
        )
    )
    expected = _reference("Order", ORDER_FIELDS, message)
    assert order_digest(DOMAIN, o) == request_digest(DOMAIN, o) == expected


@given(account=u(32), nonce=u(64))
def test_cancel_digest_matches_eth_account(account, nonce) -> None:
    expected = _reference(
        "Cancel",
        [("accountId", "uint32"), ("nonce", "uint64")],
        {"accountId": account, "nonce": nonce},
    )
    t = CancelOrder(account, nonce, SIG)
    assert cancel_digest(DOMAIN, t) == request_digest(DOMAIN, t) == expected


@given(market=u(16), price=u(64), timestamp=u(64))
def test_price_digest_matches_eth_account(market, price, timestamp) -> None:
    expected = _reference(
        "Price",
        [("marketId", "uint16"), ("price", "uint64"), ("timestamp", "uint64")],
        {"marketId": market, "price": price, "timestamp": timestamp},
    )
    t = PriceUpdate(market, price, timestamp, SIG)
    assert price_digest(DOMAIN, t) == request_digest(DOMAIN, t) == expected


@pytest.mark.parametrize(
    "t",
    [
        PlaceOrder(3, 1, True, 300_000, 25, 1, 2, 7, 99, b""),
        CancelOrder(3, 7, b""),
        PriceUpdate(1, 300_000, 1_700_000_000, b""),
        Withdraw(3, SIGNER, 5, 0, b""),
        MarginTransfer(3, 1, -5, 0, b""),
    ],
)
def test_sign_request_recovers_signer_and_ignores_old_signature(t) -> None:
    signed = sign_request(KEY, DOMAIN, t)
    assert len(signed.signature) == 65 and signed.signature[64] in (27, 28)
    assert recover_signer(request_digest(DOMAIN, signed), signed.signature) == SIGNER
    assert dataclasses.replace(signed, signature=b"") == t
    # eth_account recovers the same signer from the same digest
    assert Account._recover_hash(request_digest(DOMAIN, t), signature=signed.signature) == SIGNER


def test_signature_over_other_fields_recovers_someone_else() -> None:
    signed = sign_request(KEY, DOMAIN, PlaceOrder(3, 1, True, 300_000, 25, 0, 0, 7, 0, b""))
    tampered = dataclasses.replace(signed, price=300_001)
    assert recover_signer(request_digest(DOMAIN, tampered), tampered.signature) != SIGNER


def test_high_s_signature_rejected() -> None:
    signed = sign_request(KEY, DOMAIN, CancelOrder(3, 7, b""))
    s = int.from_bytes(signed.signature[32:64], "big")
    v = signed.signature[64]
    high = signed.signature[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])
    with pytest.raises(ProtocolError, match="high s"):
        recover_signer(request_digest(DOMAIN, signed), high)


def test_request_digest_of_unsigned_transition_raises_type_error() -> None:
    with pytest.raises(TypeError):
        request_digest(DOMAIN, Deposit(0, 0, SIGNER, 1, 0))  # type: ignore[arg-type]


def _outcome(digest: bytes, signature: bytes | bytearray) -> str:
    try:
        return recover_signer(digest, signature)  # type: ignore[arg-type]
    except ProtocolError as exc:
        return f"error: {exc.message}"


def test_recover_cache_never_masks_a_different_signature() -> None:
    """Once (digest, sig) recovered to SIGNER, every other signature or digest is still recovered
    (or rejected) on its own: the cache key is the exact pair, and rejections are never cached."""
    other_key = (0xA11CE).to_bytes(32, "big")
    order = PlaceOrder(3, 1, True, 300_000, 25, 0, 0, 7, 0, b"")
    digest = request_digest(DOMAIN, order)
    good = sign_request(KEY, DOMAIN, order).signature
    forged = sign_request(other_key, DOMAIN, order).signature
    r, s, v = good[:32], int.from_bytes(good[32:64], "big"), good[64]
    variants = {
        "forged": forged,
        "high_s_twin": r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v]),
        "other_recovery_id": good[:64] + bytes([55 - v]),
        "v_0_or_1": good[:64] + bytes([v - 27]),
        "r_plus_1": (int.from_bytes(r, "big") + 1).to_bytes(32, "big") + good[32:],
        "short": good[:64],
        "zeros": b"\x00" * 65,
    }
    _recover_cached.cache_clear()
    uncached = {name: _outcome(digest, sig) for name, sig in variants.items()}
    assert uncached["forged"] == Account.from_key(other_key).address
    assert uncached["high_s_twin"].startswith("error")
    assert all(result != SIGNER for result in uncached.values())
    for _ in range(3):
        assert recover_signer(digest, good) == SIGNER
        for name, sig in variants.items():
            assert _outcome(digest, sig) == uncached[name], name
        # the same signature over another digest recovers someone else
        other = request_digest(DOMAIN, dataclasses.replace(order, size=26))
        assert recover_signer(other, good) != SIGNER
    info = _recover_cached.cache_info()
    assert info.hits >= 2 and info.maxsize == RECOVER_CACHE_SIZE


def test_recover_non_bytes_arguments_bypass_the_cache() -> None:
    signed = sign_request(KEY, DOMAIN, CancelOrder(3, 7, b""))
    digest = request_digest(DOMAIN, signed)
    _recover_cached.cache_clear()
    # as before the cache: coincurve takes bytes only, so a bytearray is a bad signature
    with pytest.raises(ProtocolError):
        recover_signer(digest, bytearray(signed.signature))  # type: ignore[arg-type]
    assert _recover_cached.cache_info().currsize == 0
    assert recover_signer(digest, signed.signature) == SIGNER
    assert _recover_cached.cache_info().currsize == 1
