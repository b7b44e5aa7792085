"""The batch builder: header (withdrawal fields copied from the exchange leaf: the global,
cumulative withdrawals tree), trace tree, deposit and forced-request prefix chains, atomicity."""

import dataclasses
import random

import eth_abi
import pytest
from eth_account import Account

from isoperp.batch.builder import (
    BatchBuilder,
    BatchFull,
    deposit_prefix_step,
    forced_prefix_step,
)
from isoperp.errors import TransitionRejected
from isoperp.hashing import keccak256
from isoperp.ledger.ledger import Ledger
from isoperp.ledger.markets import DEVNET_MARKETS, DEVNET_OPERATOR, DEVNET_ORACLE
from isoperp.ledger.model import EMPTY_WITHDRAWALS_ROOT
from isoperp.ledger.transitions import (
    Deposit,
    DepositRejected,
    FeeCollect,
    Fill,
    MarginTransfer,
    PlaceOrder,
    Withdraw,
    forced_request,
)
from isoperp.protocol.batch import batch_hash, decode_batch, decode_entries, encode_record
from isoperp.protocol.constants import (
    INSURANCE_ACCOUNT,
    MAX_BATCH_RECORDS,
    SYSTEM_WITHDRAWAL_ACCOUNT,
    TRACE_TREE_DEPTH,
    WITHDRAWAL_TREE_DEPTH,
)
from isoperp.protocol.header import CheckpointHeader, WithdrawalLeaf, trace_leaf_hash
from isoperp.protocol.signing import Domain, request_digest, sign_digest, sign_request
from isoperp.tree.merkle import SparseMerkleTree, verify_proof

DOMAIN = Domain(31337, "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512")
ALICE, BOB = Account.create(), Account.create()


def withdraw(account_id, amount, nonce, who=ALICE):
    unsigned = Withdraw(account_id, who.address, amount, nonce, b"")
    sig = sign_digest(bytes(who.key), request_digest(DOMAIN, unsigned))
    return Withdraw(account_id, who.address, amount, nonce, sig)


def margin(account_id, market_id, amount, nonce, who):
    unsigned = MarginTransfer(account_id, market_id, amount, nonce, b"")
    sig = sign_digest(bytes(who.key), request_digest(DOMAIN, unsigned))
    return MarginTransfer(account_id, market_id, amount, nonce, sig)


@pytest.fixture
def ledger():
    return Ledger.genesis(DEVNET_MARKETS, DOMAIN, DEVNET_ORACLE, fee_recipient=DEVNET_OPERATOR)


@pytest.fixture
def genesis(ledger):
    return CheckpointHeader.genesis(ledger.state_root)


def test_seal_commits_everything(ledger, genesis):
    b = BatchBuilder(ledger, genesis)
    ts = [
        Deposit(0, 0, ALICE.address, 5_000_000, 100),
        Deposit(1, 1, BOB.address, 7_000_000, 101),
        withdraw(0, 1_000_000, 0),
        withdraw(0, 2_000_000, 1),
    ]
    for t in ts:
        b.add(t)
    sealed = b.seal(timestamp=200)
    h = sealed.header
    assert (h.seq, h.prev_hash, h.timestamp) == (1, genesis.hash, 200)
    assert h.state_root == ledger.state_root
    assert h.batch_hash == batch_hash(sealed.data)
    assert (h.record_count, h.batch_length) == (4, len(sealed.data))
    assert decode_batch(sealed.data) == ts
    # deposit queue: cursor and prefix hash continue the vault's chain
    prefix = deposit_prefix_step(deposit_prefix_step(b"\0" * 32, ts[0]), ts[1])
    assert (h.deposit_cursor, h.deposit_prefix_hash) == (2, prefix)
    # withdrawals: the exchange leaf's global tree; leaf i is the i-th Withdraw record, proofs
    # verify against the header root, which is the exchange leaf's
    ex = ledger.exchange
    assert (h.withdrawals_root, h.withdrawal_count, h.withdrawal_total) == (
        ex.withdrawals_root,
        2,
        3_000_000,
    )
    assert sealed.first_withdrawal == 0
    assert sealed.withdrawals == (
        WithdrawalLeaf(0, ALICE.address, 1_000_000),
        WithdrawalLeaf(0, ALICE.address, 2_000_000),
    )
    tree = ledger.withdrawals_tree(h.withdrawal_count)
    assert tree.root == h.withdrawals_root
    for i, leaf in enumerate(sealed.withdrawals):
        proof = tree.proof(i)
        assert verify_proof(h.withdrawals_root, leaf.leaf_hash, i, proof, WITHDRAWAL_TREE_DEPTH)
    # trace: every record is followed by the root after it in the data; the last root is the
    # state root; leaf i = (i, offset_i, record hash, root after)
    assert sealed.roots_after[-1] == h.state_root
    records = [encode_record(t) for t in ts]
    entries = decode_entries(sealed.data)
    assert [e.root_after for e in entries] == list(sealed.roots_after)
    assert [e.record for e in entries] == records == list(sealed.records)
    offsets = [5, 5 + 57 + 32, 5 + 2 * (57 + 32), 5 + 2 * (57 + 32) + 114 + 32]
    assert [e.offset for e in entries] == offsets
    assert len(sealed.data) == offsets[-1] + 114 + 32
    trace = SparseMerkleTree(
        TRACE_TREE_DEPTH,
        [
            (i, trace_leaf_hash(i, o, r, root))
            for i, (o, r, root) in enumerate(zip(offsets, records, sealed.roots_after, strict=True))
        ],
    )
    assert h.trace_root == trace.root
    for i in range(4):
        leaf = trace_leaf_hash(i, offsets[i], records[i], sealed.roots_after[i])
        assert verify_proof(h.trace_root, leaf, i, sealed.trace_proof(i), TRACE_TREE_DEPTH)
    assert len(set(sealed.roots_after)) == 4  # every transition moved the root


def test_replaying_batch_data_reproduces_the_root(ledger, genesis):
    b = BatchBuilder(ledger, genesis)
    b.add(Deposit(0, 0, ALICE.address, 5_000_000, 1))
    b.add(Deposit(1, 1, BOB.address, 5_000_000, 1))
    b.add(margin(0, 0, 2_000_000, 0, ALICE))
    b.add(margin(1, 0, 2_000_000, 0, BOB))
    for who, account_id, is_buy in ((ALICE, 0, False), (BOB, 1, True)):
        order = PlaceOrder(account_id, 0, is_buy, 600_000, 10, 0, 0, 0, 0, b"")
        b.add(sign_request(bytes(who.key), DOMAIN, order))
    b.add(Fill(0, 0, 0, 1, 0, 10, 600_000, 2))
    sealed = b.seal(timestamp=3)
    fresh = Ledger.genesis(DEVNET_MARKETS, DOMAIN, DEVNET_ORACLE, fee_recipient=DEVNET_OPERATOR)
    for t in decode_batch(sealed.data):
        fresh.apply(t)
    assert fresh.state_root == sealed.header.state_root


def test_rejected_transition_changes_neither_ledger_nor_batch(ledger, genesis):
    b = BatchBuilder(ledger, genesis)
    b.add(Deposit(0, 0, ALICE.address, 1_000_000, 1))
    root, size = ledger.state_root, b.size
    with pytest.raises(TransitionRejected):
        b.add(withdraw(0, 1_000_001, 0))
    with pytest.raises(TransitionRejected):
        b.add(Deposit(5, 1, BOB.address, 1, 1))  # out of queue order
    assert (ledger.state_root, b.size, len(b)) == (root, size, 1)
    assert b.seal(timestamp=1).header.withdrawal_count == 0


def test_batch_full_before_applying(ledger, genesis, monkeypatch):
    monkeypatch.setattr("isoperp.batch.builder.MAX_BATCH_BYTES", 5 + 57 + 32)
    b = BatchBuilder(ledger, genesis)
    b.add(Deposit(0, 0, ALICE.address, 1, 1))
    assert b.size == 5 + 57 + 32  # a record and its state root
    root = ledger.state_root
    with pytest.raises(BatchFull):
        b.add(Deposit(1, 1, BOB.address, 1, 1))
    assert ledger.state_root == root and len(b) == 1


def test_batch_full_at_record_limit(ledger, genesis, monkeypatch):
    assert MAX_BATCH_RECORDS == 1 << TRACE_TREE_DEPTH
    monkeypatch.setattr("isoperp.batch.builder.MAX_BATCH_RECORDS", 1)
    b = BatchBuilder(ledger, genesis)
    b.add(Deposit(0, 0, ALICE.address, 1, 1))
    root = ledger.state_root
    with pytest.raises(BatchFull, match="records"):
        b.add(Deposit(1, 1, BOB.address, 1, 1))
    assert ledger.state_root == root and len(b) == 1


def test_timestamp_never_goes_back(ledger, genesis):
    first = BatchBuilder(ledger, genesis).seal(timestamp=500).header
    second = BatchBuilder(ledger, first).seal(timestamp=400).header
    assert (second.seq, second.timestamp, second.prev_hash) == (2, 500, first.hash)


def test_empty_batch_seals(ledger, genesis):
    sealed = BatchBuilder(ledger, genesis).seal(timestamp=0)
    assert sealed.data == b"\x02\x00\x00\x00\x00"
    h = sealed.header
    assert (h.record_count, h.batch_length, h.batch_hash) == (
        0,
        5,
        keccak256(keccak256(sealed.data)),
    )
    assert h.trace_root == SparseMerkleTree(TRACE_TREE_DEPTH).root
    assert sealed.header.state_root == genesis.state_root
    assert sealed.header.withdrawals_root == SparseMerkleTree(WITHDRAWAL_TREE_DEPTH).root
    assert sealed.header.withdrawals_root == EMPTY_WITHDRAWALS_ROOT
    assert (sealed.header.withdrawal_count, sealed.header.withdrawal_total) == (0, 0)


def test_withdrawal_fields_are_cumulative_across_batches(ledger, genesis):
    b1 = BatchBuilder(ledger, genesis)
    b1.add(Deposit(0, 0, ALICE.address, 5_000_000, 1))
    b1.add(withdraw(0, 1_000_000, 0))
    s1 = b1.seal(timestamp=2)
    b2 = BatchBuilder(ledger, s1.header)
    assert b2.withdrawal_count == 1  # the next paying record takes global index 1
    b2.add(withdraw(0, 2_000_000, 1))
    s2 = b2.seal(timestamp=3)
    h1, h2 = s1.header, s2.header
    assert (h1.withdrawal_count, h1.withdrawal_total) == (1, 1_000_000)
    assert (h2.withdrawal_count, h2.withdrawal_total) == (2, 3_000_000)
    assert s2.first_withdrawal == 1
    assert s2.withdrawals == (WithdrawalLeaf(0, ALICE.address, 2_000_000),)
    # leaf 0 proves against both roots (append-only); leaf 1 only against the second
    leaf0 = WithdrawalLeaf(0, ALICE.address, 1_000_000).leaf_hash
    for h in (h1, h2):
        proof = ledger.withdrawals_tree(h.withdrawal_count).proof(0)
        assert verify_proof(h.withdrawals_root, leaf0, 0, proof, WITHDRAWAL_TREE_DEPTH)
    leaf1 = s2.withdrawals[0].leaf_hash
    assert not verify_proof(
        h1.withdrawals_root, leaf1, 1, ledger.withdrawals_tree(1).proof(1), WITHDRAWAL_TREE_DEPTH
    )


def test_deposit_rejected_and_fee_collect_pay_through_the_tree(ledger, genesis):
    b = BatchBuilder(ledger, genesis)
    _funded_pair(b)  # the fill booked trading fees
    fees = ledger.exchange.fee_balance
    assert fees > 0
    rejected = DepositRejected(2, INSURANCE_ACCOUNT, Account.create().address, 9, 3)
    # account ids run out (only reachable after 2^24 - 1 accounts: put the counter there)
    ledger._put_exchange(dataclasses.replace(ledger.exchange, next_account_id=INSURANCE_ACCOUNT))
    b.add(rejected)
    b.add(FeeCollect(fees))
    sealed = b.seal(timestamp=4)
    to_insurance = fees * 200_000 // 1_000_000
    assert sealed.withdrawals == (
        WithdrawalLeaf(SYSTEM_WITHDRAWAL_ACCOUNT, rejected.owner, 9),
        WithdrawalLeaf(SYSTEM_WITHDRAWAL_ACCOUNT, DEVNET_OPERATOR, fees - to_insurance),
    )
    h = sealed.header
    assert h.withdrawal_total == 9 + fees - to_insurance
    assert h.deposit_cursor == 3
    prefix = b"\0" * 32
    for d in (
        Deposit(0, 0, ALICE.address, 5_000_000_000, 1),
        Deposit(1, 1, BOB.address, 5_000_000_000, 1),
    ):
        prefix = deposit_prefix_step(prefix, d)
    assert h.deposit_prefix_hash == deposit_prefix_step(prefix, rejected)


# -- forced requests -------------------------------------------------------------------------------


def _contract_chain(entries):
    """The Settlement's forced-request prefix chain, re-implemented from its Solidity with eth_abi:
    r_{i+1} = keccak256(abi.encode(r_i, uint64 index, uint8 kind, address requester,
    uint32 accountId, uint16 marketId, uint128 amount, uint64 timestamp))."""
    prefixes = [b"\0" * 32]
    types = ["bytes32", "uint64", "uint8", "address", "uint32", "uint16", "uint128", "uint64"]
    for e in entries:
        prefixes.append(keccak256(eth_abi.encode(types, [prefixes[-1], *e])))
    return prefixes


def _funded_pair(b):
    """ALICE (account 0) and BOB (account 1) with collateral; BOB long 10 BTC lots vs ALICE."""
    b.add(Deposit(0, 0, ALICE.address, 5_000_000_000, 1))
    b.add(Deposit(1, 1, BOB.address, 5_000_000_000, 1))
    b.add(margin(0, 0, 2_000_000_000, 0, ALICE))
    b.add(margin(1, 0, 1_000_000_000, 0, BOB))
    for who, account_id, is_buy in ((ALICE, 0, False), (BOB, 1, True)):
        order = PlaceOrder(account_id, 0, is_buy, 600_000, 10, 0, 0, 0, 0, b"")
        b.add(sign_request(bytes(who.key), DOMAIN, order))
    b.add(Fill(0, 0, 0, 1, 0, 10, 600_000, 2))


def test_forced_requests_extend_the_contract_chain_and_pay_through_withdrawals(ledger, genesis):
    # queue entries as the contract stores them: (index, kind, requester, account, market,
    # amount, timestamp)
    stranger = Account.create().address
    queue = [
        (0, 1, ALICE.address, 0, 0, 1_000_000, 10),  # paid in full
        (1, 1, stranger, 0, 0, 5, 11),  # not the owner: no-op, no leaf
        (2, 2, BOB.address, 1, 0, 0, 12),  # exit: paid the equity at the mark
        (3, 1, BOB.address, 1, 0, (1 << 128) - 1, 13),  # capped at BOB's free collateral
        (4, 2, ALICE.address, 0, 1, 0, 14),  # no position in ETH-USD: no-op
        (5, 1, ALICE.address, 0, 0, 10**18, 15),  # more than ALICE has: all of it
    ]
    chain = _contract_chain(queue)
    b = BatchBuilder(ledger, genesis)
    _funded_pair(b)
    b.add(withdraw(0, 7, 1))  # nonce 0 went to the margin move
    first = []
    for i, e in enumerate(queue[:3]):
        slot = b.withdrawal_count
        first.append(b.add(forced_request(*e)))
        assert (b.forced_cursor, b.forced_prefix_hash) == (i + 1, chain[i + 1])
        assert b.withdrawal_count == slot + (first[-1].paid > 0)
    first_sealed = b.seal(timestamp=20)
    h1 = first_sealed.header
    assert (h1.forced_cursor, h1.forced_prefix_hash) == (3, chain[3])
    bob_equity = 1_000_000_000 - 3_000  # BOB bought 10 lots at the mark: only the taker fee
    assert [r.paid for r in first] == [1_000_000, 0, bob_equity]
    assert first_sealed.withdrawals == (
        WithdrawalLeaf(0, ALICE.address, 7),
        WithdrawalLeaf(0, ALICE.address, 1_000_000),
        WithdrawalLeaf(1, BOB.address, bob_equity),
    )
    assert h1.withdrawal_count == 3
    assert h1.withdrawal_total == 7 + 1_000_000 + bob_equity
    tree1 = ledger.withdrawals_tree(h1.withdrawal_count)
    for i, leaf in enumerate(first_sealed.withdrawals):
        proof = tree1.proof(i)
        assert verify_proof(h1.withdrawals_root, leaf.leaf_hash, i, proof, WITHDRAWAL_TREE_DEPTH)
    # the next checkpoint continues the chain from the previous header
    b2 = BatchBuilder(ledger, h1)
    second = [b2.add(forced_request(*e)) for e in queue[3:]]
    h2 = b2.seal(timestamp=30).header
    assert (h2.forced_cursor, h2.forced_prefix_hash) == (6, chain[6])
    assert [r.paid for r in second] == [4_000_000_000, 0, 3_000_000_000 - 1_000_007]
    # cumulative: the first batch's total and the second's payouts
    assert h2.withdrawal_total == h1.withdrawal_total + 4_000_000_000 + 3_000_000_000 - 1_000_007
    assert h2.withdrawal_count == 5
    assert ledger.exchange.forced_cursor == 6
    # an empty batch keeps the cursor and hash
    h3 = BatchBuilder(ledger, h2).seal(timestamp=30).header
    assert (h3.forced_cursor, h3.forced_prefix_hash) == (6, chain[6])


def test_forced_request_out_of_order_changes_neither_ledger_nor_batch(ledger, genesis):
    b = BatchBuilder(ledger, genesis)
    b.add(Deposit(0, 0, ALICE.address, 1_000_000, 1))
    root, size = ledger.state_root, b.size
    with pytest.raises(TransitionRejected):
        b.add(forced_request(1, 1, ALICE.address, 0, 0, 5, 1))
    assert (ledger.state_root, b.size, len(b)) == (root, size, 1)
    h = b.seal(timestamp=1).header
    assert (h.forced_cursor, h.forced_prefix_hash, h.withdrawal_count) == (0, b"\0" * 32, 0)


def test_replayed_batch_rebuilds_the_forced_payouts(ledger, genesis):
    """Withdrawal leaves of forced requests depend on the state: rebuilding them from batch data
    means replaying it through a ledger, which appends them to its withdrawals tree."""
    b = BatchBuilder(ledger, genesis)
    _funded_pair(b)
    b.add(forced_request(0, 2, ALICE.address, 0, 0, 0, 5))
    b.add(forced_request(1, 1, BOB.address, 1, 0, 1 << 100, 6))
    b.add(withdraw(0, 9, 1))
    sealed = b.seal(timestamp=7)
    fresh = Ledger.genesis(DEVNET_MARKETS, DOMAIN, DEVNET_ORACLE, fee_recipient=DEVNET_OPERATOR)
    for t in decode_batch(sealed.data):
        fresh.apply(t)
    leaves = fresh.withdrawals()
    assert tuple(leaves) == sealed.withdrawals and len(leaves) == 3
    assert fresh.state_root == sealed.header.state_root
    assert fresh.withdrawals_tree().root == sealed.header.withdrawals_root
    assert fresh.exchange.withdrawals_root == sealed.header.withdrawals_root


def test_forced_prefix_step_matches_eth_abi():
    rng = random.Random(5)
    for _ in range(50):
        kind = rng.choice((1, 2))
        entry = (
            rng.randrange(1 << 64),
            kind,
            Account.create().address,
            rng.randrange(1 << 32),
            rng.randrange(1 << 16) if kind == 2 else 0,
            rng.randrange(1 << 128) if kind == 1 else 0,
            rng.randrange(1 << 64),
        )
        prefix = rng.randbytes(32)
        types = ["bytes32", "uint64", "uint8", "address", "uint32", "uint16", "uint128", "uint64"]
        expected = keccak256(eth_abi.encode(types, [prefix, *entry]))
        assert forced_prefix_step(prefix, forced_request(*entry)) == expected
