"""The batch builder: header, withdrawals and trace trees, deposit prefix chain, atomicity."""

import pytest
from eth_account import Account

from isoperp.batch.builder import BatchBuilder, BatchFull, deposit_prefix_step
from isoperp.errors import TransitionRejected
from isoperp.hashing import keccak256
from isoperp.ledger.ledger import Ledger
from isoperp.ledger.markets import DEVNET_MARKETS, DEVNET_ORACLE
from isoperp.ledger.transitions import Deposit, Fill, MarginTransfer, PlaceOrder, Withdraw
from isoperp.protocol.batch import decode_batch, encode_record
from isoperp.protocol.constants import TRACE_TREE_DEPTH, WITHDRAWAL_TREE_DEPTH
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
    return Ledger.genesis(DEVNET_MARKETS, DOMAIN, DEVNET_ORACLE)


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
    assert h.batch_hash == keccak256(sealed.data)
    assert decode_batch(sealed.data) == ts
    # deposit queue: cursor and prefix hash continue the vault's chain
    prefix = deposit_prefix_step(deposit_prefix_step(b"\0" * 32, ts[0]), ts[1])
    assert (h.deposit_cursor, h.deposit_prefix_hash) == (2, prefix)
    # withdrawals tree: leaf i is the i-th Withdraw record; proofs verify against the header root
    assert h.withdrawal_count == 2
    assert sealed.withdrawals == (
        WithdrawalLeaf(0, ALICE.address, 1_000_000),
        WithdrawalLeaf(0, ALICE.address, 2_000_000),
    )
    for i, leaf in enumerate(sealed.withdrawals):
        proof = sealed.withdrawal_proof(i)
        assert verify_proof(h.withdrawals_root, leaf.leaf_hash, i, proof, WITHDRAWAL_TREE_DEPTH)
    # trace tree: (record hash, root after) per transition; the last root is the state root
    assert sealed.roots_after[-1] == h.state_root
    records = [encode_record(t) for t in ts]
    trace = SparseMerkleTree(
        TRACE_TREE_DEPTH,
        [
            (i, trace_leaf_hash(i, r, root))
            for i, (r, root) in enumerate(zip(records, sealed.roots_after, strict=True))
        ],
    )
    assert h.trace_root == trace.root
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
    fresh = Ledger.genesis(DEVNET_MARKETS, DOMAIN, DEVNET_ORACLE)
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
    monkeypatch.setattr("isoperp.batch.builder.MAX_BATCH_BYTES", 5 + 57)
    b = BatchBuilder(ledger, genesis)
    b.add(Deposit(0, 0, ALICE.address, 1, 1))
    root = ledger.state_root
    with pytest.raises(BatchFull):
        b.add(Deposit(1, 1, BOB.address, 1, 1))
    assert ledger.state_root == root and len(b) == 1


def test_timestamp_never_goes_back(ledger, genesis):
    first = BatchBuilder(ledger, genesis).seal(timestamp=500).header
    second = BatchBuilder(ledger, first).seal(timestamp=400).header
    assert (second.seq, second.timestamp, second.prev_hash) == (2, 500, first.hash)


def test_empty_batch_seals(ledger, genesis):
    sealed = BatchBuilder(ledger, genesis).seal(timestamp=0)
    assert sealed.data == b"\x01\x00\x00\x00\x00"
    assert sealed.header.state_root == genesis.state_root
    assert sealed.header.withdrawals_root == SparseMerkleTree(WITHDRAWAL_TREE_DEPTH).root
