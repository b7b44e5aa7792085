"""Python leaf encodings and indices against the Solidity LeafLib (same bytes, same hashes)."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isoperp.ledger.markets import DEVNET_MARKETS
from isoperp.ledger.model import Account, Exchange, Position, checksum_address
from isoperp.protocol import leaves as L

DIFF = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
u = lambda bits: st.integers(0, (1 << bits) - 1)  # noqa: E731
s = lambda bits: st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)  # noqa: E731
addresses = st.binary(min_size=20, max_size=20).map(checksum_address)


@DIFF
@given(account_id=u(24), owner=addresses, collateral=u(128), nonce=u(64))
def test_account_leaf_matches(leaves_harness, account_id, owner, collateral, nonce):
    a = Account(account_id=account_id, owner=owner, collateral=collateral, nonce=nonce)
    fields = (account_id, owner, collateral, nonce)
    assert bytes(leaves_harness.encodeAccount(fields)) == L.encode_account(a)
    assert bytes(leaves_harness.hashAccount(fields)) == L.leaf_hash(a)
    assert leaves_harness.accountIndex(account_id) == L.account_index(account_id)


@DIFF
@given(account_id=u(24), market_id=u(6), size=s(64), quote=s(128), basis=s(128), funding=s(128))
def test_position_leaf_matches(leaves_harness, account_id, market_id, size, quote, basis, funding):
    p = Position(
        account_id=account_id,
        market_id=market_id,
        size=size,
        quote=quote,
        basis=basis,
        funding_index=funding,
    )
    fields = (account_id, market_id, size, quote, basis, funding)
    assert bytes(leaves_harness.encodePosition(fields)) == L.encode_position(p)
    assert bytes(leaves_harness.hashPosition(fields)) == L.leaf_hash(p)
    assert leaves_harness.positionIndex(account_id, market_id) == L.position_index(
        account_id, market_id
    )


def test_devnet_market_leaves_match(leaves_harness):
    for m in DEVNET_MARKETS:
        fields = L.solidity_struct(m)
        assert bytes(leaves_harness.encodeMarket(fields)) == L.encode_market(m)
        assert bytes(leaves_harness.hashMarket(fields)) == L.leaf_hash(m)
        assert leaves_harness.marketIndex(m.market_id) == L.market_index(m.market_id)


@DIFF
@given(
    insurance=s(128),
    fees=u(128),
    next_id=u(24),
    dc=u(64),
    fc=u(64),
    root=st.binary(min_size=32, max_size=32),
    count=st.integers(0, 1 << 32),
    total=u(128),
)
def test_exchange_leaf_v2_matches(
    leaves_harness, insurance, fees, next_id, dc, fc, root, count, total
):
    e = Exchange(
        insurance_fund=insurance,
        fee_balance=fees,
        next_account_id=next_id,
        deposit_cursor=dc,
        forced_cursor=fc,
        withdrawals_root=root,
        withdrawal_count=count,
        withdrawal_total=total,
    )
    fields = (insurance, fees, next_id, dc, fc, root, count, total)
    assert L.solidity_struct(e) == fields
    assert bytes(leaves_harness.encodeExchange(fields)) == L.encode_exchange(e)
    assert bytes(leaves_harness.hashExchange(fields)) == L.leaf_hash(e)
    assert leaves_harness.exchangeIndex() == L.EXCHANGE_INDEX
