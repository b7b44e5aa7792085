"""RequestLib: EIP-712 request digests and strict recovery, against isoperp.protocol.signing."""

from __future__ import annotations

import random
from typing import Any

import pytest
from eth_account import Account
from eth_utils import to_checksum_address

from isoperp.ledger.transitions import MarginTransfer, Withdraw
from isoperp.protocol import signing
from isoperp.protocol.signing import Domain, request_digest, sign_digest

SEED = 31337
N = signing.SECP256K1_N
HALF_N = signing.SECP256K1_HALF_N
# BadSignatureReason
WRONG_LENGTH, BAD_V, HIGH_S, NO_SIGNER = range(4)


@pytest.fixture(scope="session")
def harness(project: Any, deployer: Any) -> Any:
    return deployer.deploy(project.RequestHarness)


def _random_domain(rng: random.Random) -> Domain:
    return Domain(
        rng.choice([1, 31337, rng.randrange(2**64)]), to_checksum_address(rng.randbytes(20))
    )


def _signed(rng: random.Random) -> tuple[bytes, bytes, str]:
    """(digest, signature, signer) for a random key and digest."""
    key = rng.randbytes(32)
    digest = rng.randbytes(32)
    return digest, sign_digest(key, digest), Account.from_key(key).address


def _with_s(sig: bytes, s: int, v: int | None = None) -> bytes:
    return sig[:32] + s.to_bytes(32, "big") + bytes([sig[64] if v is None else v])


# ---------------------------------------------------------------- type hashes / domain


def test_typeHashes_match_reference_succeeds(harness: Any) -> None:
    domain, withdrawal, margin = harness.typeHashes()
    assert bytes(domain) == signing.DOMAIN_TYPEHASH
    assert bytes(withdrawal) == signing.WITHDRAWAL_TYPEHASH
    assert bytes(margin) == signing.MARGIN_TRANSFER_TYPEHASH


def test_domainSeparator_random_inputs_match_reference_succeeds(harness: Any) -> None:
    rng = random.Random(SEED)
    for _ in range(6):
        domain = _random_domain(rng)
        got = harness.domainSeparator(domain.chain_id, domain.verifying_contract)
        assert bytes(got) == domain.separator


def test_domainSeparator_of_settlement_matches_reference_succeeds(
    settlement: Any, chain: Any
) -> None:
    expected = Domain(chain.chain_id, settlement.address).separator
    assert bytes(settlement.domainSeparator()) == expected


# ---------------------------------------------------------------- digests


def test_withdrawalDigest_random_inputs_match_reference_succeeds(harness: Any) -> None:
    rng = random.Random(SEED + 1)
    for _ in range(8):
        domain = _random_domain(rng)
        request = Withdraw(
            account_id=rng.choice([0, 2**32 - 1, rng.randrange(2**24)]),
            recipient=to_checksum_address(rng.randbytes(20)),
            amount=rng.choice([1, 2**128 - 1, rng.randrange(2**128)]),
            nonce=rng.choice([0, 2**64 - 1, rng.randrange(2**64)]),
            signature=b"",
        )
        got = harness.withdrawalDigest(
            domain.separator, request.account_id, request.recipient, request.amount, request.nonce
        )
        assert bytes(got) == request_digest(domain, request)


def test_marginTransferDigest_random_inputs_match_reference_succeeds(harness: Any) -> None:
    rng = random.Random(SEED + 2)
    for _ in range(8):
        domain = _random_domain(rng)
        request = MarginTransfer(
            account_id=rng.randrange(2**32),
            market_id=rng.choice([0, 63, 2**16 - 1]),
            amount=rng.choice([-(2**127), 2**127 - 1, -1, rng.randint(-(2**127), 2**127 - 1)]),
            nonce=rng.randrange(2**64),
            signature=b"",
        )
        got = harness.marginTransferDigest(
            domain.separator, request.account_id, request.market_id, request.amount, request.nonce
        )
        assert bytes(got) == request_digest(domain, request)


# ---------------------------------------------------------------- recover


def test_recover_random_signatures_return_signer_succeeds(harness: Any) -> None:
    rng = random.Random(SEED + 3)
    for _ in range(8):
        digest, sig, signer = _signed(rng)
        assert harness.recover(digest, sig) == signer == signing.recover_signer(digest, sig)


def test_recover_signed_withdrawal_returns_owner_succeeds(harness: Any, chain: Any) -> None:
    key = bytes.fromhex("11" * 32)
    owner = Account.from_key(key).address
    domain = Domain(chain.chain_id, to_checksum_address(b"\x22" * 20))
    request = Withdraw(1, owner, 5_000_000, 0, b"")
    digest = request_digest(domain, request)
    sig = sign_digest(key, digest)
    onchain = harness.withdrawalDigest(domain.separator, 1, owner, 5_000_000, 0)
    assert harness.recover(onchain, sig) == owner


def test_recover_other_digest_returns_other_address_succeeds(harness: Any) -> None:
    rng = random.Random(SEED + 4)
    _, sig, signer = _signed(rng)
    assert harness.recover(bytes(31) + b"\x01", sig) != signer


def test_recover_boundary_s_is_not_high_succeeds(harness: Any, deployer: Any) -> None:
    # s == floor(n/2) is the largest low s: it must not be refused as malleable (it could
    # recover some address or none; here it recovers one).
    rng = random.Random(SEED + 5)
    digest, sig, _ = _signed(rng)
    assert harness.recover(digest, _with_s(sig, HALF_N)) != "0x" + "00" * 20


@pytest.mark.parametrize("length", [0, 64, 66, 130])
def test_recover_wrong_length_reverts(
    harness: Any, deployer: Any, reverts: Any, length: int
) -> None:
    digest, sig, _ = _signed(random.Random(SEED + 6))
    bad = (sig * 3)[:length]
    with reverts(harness.RequestLib_BadSignature, reason=WRONG_LENGTH):
        harness.recover.transact(digest, bad, sender=deployer)


@pytest.mark.parametrize("v", [0, 1, 26, 29, 255])
def test_recover_bad_v_reverts(harness: Any, deployer: Any, reverts: Any, v: int) -> None:
    digest, sig, _ = _signed(random.Random(SEED + 7))
    with reverts(harness.RequestLib_BadSignature, reason=BAD_V):
        harness.recover.transact(digest, sig[:64] + bytes([v]), sender=deployer)


def test_recover_high_s_reverts(harness: Any, deployer: Any, reverts: Any) -> None:
    # The malleable twin (r, n - s, v ^ 1) is a valid ECDSA signature of the same digest by the same
    # key: ecrecover alone would accept it. RequestLib must not.
    digest, sig, _ = _signed(random.Random(SEED + 8))
    s = int.from_bytes(sig[32:64], "big")
    twin = _with_s(sig, N - s, 55 - sig[64])  # 27 <-> 28
    assert N - s > HALF_N
    with reverts(harness.RequestLib_BadSignature, reason=HIGH_S):
        harness.recover.transact(digest, twin, sender=deployer)


def test_recover_s_just_above_half_order_reverts(harness: Any, deployer: Any, reverts: Any) -> None:
    digest, sig, _ = _signed(random.Random(SEED + 9))
    with reverts(harness.RequestLib_BadSignature, reason=HIGH_S):
        harness.recover.transact(digest, _with_s(sig, HALF_N + 1), sender=deployer)


@pytest.mark.parametrize("which", ["r", "s"])
def test_recover_zero_r_or_s_reverts(harness: Any, deployer: Any, reverts: Any, which: str) -> None:
    digest, sig, _ = _signed(random.Random(SEED + 10))
    bad = bytes(32) + sig[32:] if which == "r" else _with_s(sig, 0)
    with reverts(harness.RequestLib_BadSignature, reason=NO_SIGNER):
        harness.recover.transact(digest, bad, sender=deployer)


def test_domainSeparator_after_chain_id_change_recomputed_succeeds(
    settlement: Any, chain: Any
) -> None:
    # A fork (new chain id) must not accept signatures made for the original chain.
    original = chain.chain_id
    provider = chain.provider
    cached = bytes(settlement.domainSeparator())
    try:
        provider.make_request("anvil_setChainId", [4242])
        forked = bytes(settlement.domainSeparator())
    finally:
        provider.make_request("anvil_setChainId", [original])
    assert forked == Domain(4242, settlement.address).separator
    assert forked != cached
    assert bytes(settlement.domainSeparator()) == cached
