"""LeafLib: leaf encodings, hashes and tree indices (docs/PROTOCOL.md, section 2), via LeafHarness.

Encodings are held against the spec (eth_abi.encode of the leaf-type word and the fields in
order) on random values covering each field's full range, and against the operator's encoder
(isoperp.protocol.leaves) on model objects.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from eth_abi import encode
from eth_utils import to_checksum_address

from isoperp.ledger.markets import DEVNET_MARKETS
from isoperp.ledger.model import Account, Exchange, Position
from isoperp.protocol import constants, leaves
from isoperp.tree.merkle import hash_leaf

SEED = 424242

ACCOUNT_TYPES = ["uint32", "address", "uint128", "uint64"]
POSITION_TYPES = ["uint32", "uint16", "int64", "int128", "int128", "int128"]
MARKET_TYPES = [
    "uint16", "uint64", "uint64", "int128", "uint64", "uint32", "uint32", "int8",
    "int32", "int32", "uint64", "uint64", "uint64", "uint64",
]  # fmt: skip
EXCHANGE_TYPES = [
    "int128", "uint128", "uint32", "uint64", "uint64", "bytes32", "uint64", "uint128"
]  # fmt: skip


@pytest.fixture(scope="session")
def harness(project: Any, deployer: Any) -> Any:
    return deployer.deploy(project.LeafHarness)


def _value(rng: random.Random, abi_type: str) -> Any:
    """A random value of `abi_type`, biased towards the extremes of its range."""
    if abi_type == "address":
        return to_checksum_address(rng.randbytes(20))
    if abi_type == "bytes32":
        return rng.choice([b"\x00" * 32, b"\xff" * 32, rng.randbytes(32)])
    bits = int(abi_type.lstrip("uint")) if abi_type.startswith("u") else int(abi_type[3:])
    lo, hi = (
        (0, 2**bits - 1) if abi_type.startswith("u") else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    )
    return rng.choice([lo, hi, 0, 1, -1 if lo < 0 else 2, rng.randint(lo, hi), rng.randint(lo, hi)])


def _random_fields(rng: random.Random, types: list[str]) -> tuple[Any, ...]:
    return tuple(_value(rng, t) for t in types)


CASES = [
    ("Account", ACCOUNT_TYPES, constants.LEAF_ACCOUNT),
    ("Position", POSITION_TYPES, constants.LEAF_POSITION),
    ("Market", MARKET_TYPES, constants.LEAF_MARKET),
    ("Exchange", EXCHANGE_TYPES, constants.LEAF_EXCHANGE),
]


def test_leafTypes_match_protocol_succeeds(harness: Any) -> None:
    assert (
        tuple(harness.leafTypes())
        == (
            constants.LEAF_ACCOUNT,
            constants.LEAF_POSITION,
            constants.LEAF_MARKET,
            constants.LEAF_EXCHANGE,
            constants.LEAF_ORDER,
        )
        == (1, 2, 3, 4, 5)
    )


# ---------------------------------------------------------------- encode / hash


@pytest.mark.parametrize(("name", "types", "leaf_type"), CASES)
def test_encode_random_leaves_match_spec_succeeds(
    harness: Any, name: str, types: list[str], leaf_type: int
) -> None:
    rng = random.Random(f"{SEED}-{name}")
    for _ in range(6):
        fields = _random_fields(rng, types)
        expected = encode(["uint8", *types], [leaf_type, *fields])
        assert len(expected) == 32 * (len(types) + 1)
        assert bytes(getattr(harness, f"encode{name}")(fields)) == expected


@pytest.mark.parametrize(("name", "types", "leaf_type"), CASES)
def test_hash_random_leaves_match_spec_succeeds(
    harness: Any, name: str, types: list[str], leaf_type: int
) -> None:
    rng = random.Random(f"{SEED}-hash-{name}")
    for _ in range(4):
        fields = _random_fields(rng, types)
        expected = hash_leaf(encode(["uint8", *types], [leaf_type, *fields]))
        assert bytes(getattr(harness, f"hash{name}")(fields)) == expected


def test_encode_matches_operator_encoder_succeeds(harness: Any, alice: Any) -> None:
    account = Account(account_id=7, owner=alice.address, collateral=123_456_789, nonce=3)
    position = Position(
        account_id=7, market_id=1, size=-250, quote=9_000_000, basis=-8_000_000, funding_index=-42
    )
    root = bytes(range(32))
    exchange = Exchange(
        insurance_fund=-5,
        fee_balance=77,
        next_account_id=8,
        deposit_cursor=9,
        forced_cursor=0,
        withdrawals_root=root,
        withdrawal_count=3,
        withdrawal_total=2**100,
    )
    pairs = [
        ("Account", account, (7, alice.address, 123_456_789, 3)),
        ("Position", position, (7, 1, -250, 9_000_000, -8_000_000, -42)),
        ("Exchange", exchange, (-5, 77, 8, 9, 0, root, 3, 2**100)),
        ("Exchange", Exchange.genesis(), leaves.solidity_struct(Exchange.genesis())),
    ]
    for market in DEVNET_MARKETS:
        fields = (
            market.market_id, market.mark_price, market.mark_time, market.funding_index,
            market.funding_time, market.imf_ppm, market.mmf_ppm, market.notional_exp,
            market.maker_fee_ppm, market.taker_fee_ppm, market.min_size, market.size_step,
            market.price_tick, market.open_interest,
        )  # fmt: skip
        pairs.append(("Market", market, fields))
    for name, leaf, fields in pairs:
        assert bytes(getattr(harness, f"encode{name}")(fields)) == leaves.encode_leaf(leaf)
        assert bytes(getattr(harness, f"hash{name}")(fields)) == leaves.leaf_hash(leaf)


def test_encode_leaf_types_never_collide_succeeds(harness: Any) -> None:
    # Same field words, different leaf kinds: the leading type word keeps the hashes apart.
    account = bytes(harness.hashAccount((0, "0x" + "00" * 20, 0, 0)))
    exchange = bytes(harness.hashExchange((0, 0, 0, 0, 0, b"\x00" * 32, 0, 0)))
    assert account != exchange


# ---------------------------------------------------------------- indices


def test_accountIndex_matches_layout_succeeds(harness: Any) -> None:
    for account_id in (0, 1, 12345, 2**24 - 1):
        expected = account_id << 6
        assert harness.accountIndex(account_id) == expected == leaves.account_index(account_id)


def test_accountIndex_out_of_range_reverts(harness: Any, deployer: Any, reverts: Any) -> None:
    with reverts(harness.LeafLib_AccountOutOfRange, accountId=2**24, limit=2**24):
        harness.accountIndex.transact(2**24, sender=deployer)


def test_positionIndex_matches_layout_succeeds(harness: Any) -> None:
    for account_id, market_id in ((0, 0), (7, 1), (2**24 - 1, 63)):
        expected = 1 << 30 | account_id << 6 | market_id
        assert harness.positionIndex(account_id, market_id) == expected
        assert expected == leaves.position_index(account_id, market_id)


def test_positionIndex_account_out_of_range_reverts(
    harness: Any, deployer: Any, reverts: Any
) -> None:
    with reverts(harness.LeafLib_AccountOutOfRange, accountId=2**32 - 1, limit=2**24):
        harness.positionIndex.transact(2**32 - 1, 0, sender=deployer)


def test_positionIndex_market_out_of_range_reverts(
    harness: Any, deployer: Any, reverts: Any
) -> None:
    with reverts(harness.LeafLib_MarketOutOfRange, marketId=64, limit=64):
        harness.positionIndex.transact(0, 64, sender=deployer)


def test_marketIndex_matches_layout_succeeds(harness: Any) -> None:
    for market_id in (0, 1, 63):
        expected = 3 << 30 | market_id
        assert harness.marketIndex(market_id) == expected == leaves.market_index(market_id)


def test_marketIndex_out_of_range_reverts(harness: Any, deployer: Any, reverts: Any) -> None:
    with reverts(harness.LeafLib_MarketOutOfRange, marketId=2**16 - 1, limit=64):
        harness.marketIndex.transact(2**16 - 1, sender=deployer)


def test_exchangeIndex_matches_layout_succeeds(harness: Any) -> None:
    assert harness.exchangeIndex() == (3 << 30 | 1 << 6) == leaves.EXCHANGE_INDEX


def test_indices_of_different_kinds_never_collide_succeeds(harness: Any) -> None:
    seen = {
        harness.accountIndex(2**24 - 1),
        harness.positionIndex(2**24 - 1, 63),
        harness.positionIndex(0, 0),
        harness.marketIndex(0),
        harness.marketIndex(63),
        harness.exchangeIndex(),
    }
    assert len(seen) == 6
    assert all(i < 2**32 for i in seen)
