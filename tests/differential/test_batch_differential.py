"""Batch data v2 commitments, Python (isoperp.protocol) against Solidity (BatchLib, CheckpointLib):
the chunk-hash batchHash on random data of every interesting length, trace leaves and the trace root
of a real sealed batch, and the v2 header hash."""

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isoperp.batch.builder import BatchBuilder, trace_offsets
from isoperp.ledger.ledger import Ledger
from isoperp.ledger.markets import DEVNET_MARKETS, DEVNET_OPERATOR, DEVNET_ORACLE
from isoperp.ledger.transitions import Deposit
from isoperp.protocol.batch import batch_hash, decode_entries
from isoperp.protocol.constants import BATCH_CHUNK_BYTES, MAX_BATCH_BYTES, TRACE_TREE_DEPTH
from isoperp.protocol.header import CheckpointHeader, trace_leaf_hash
from isoperp.protocol.signing import Domain

DIFF_SETTINGS = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
b32 = st.binary(min_size=32, max_size=32)
u = lambda bits: st.integers(0, (1 << bits) - 1)  # noqa: E731


def test_batch_hash_matches_solidity_at_chunk_boundaries(batch_harness):
    assert batch_harness.CHUNK_BYTES() == BATCH_CHUNK_BYTES
    rng = random.Random(10)
    for length in (1, 5, 4095, 4096, 4097, 8191, 8192, 8193, 100_000, MAX_BATCH_BYTES):
        data = rng.randbytes(length)
        assert bytes(batch_harness.batchHash(data)) == batch_hash(data), length
    assert bytes(batch_harness.batchHash(b"")) == batch_hash(b"")  # keccak256 of no chunk hashes


@DIFF_SETTINGS
@given(data=st.binary(min_size=1, max_size=3 * BATCH_CHUNK_BYTES + 1))
def test_batch_hash_matches_solidity_random(batch_harness, data):
    assert bytes(batch_harness.batchHash(data)) == batch_hash(data)


def test_batch_hash_keeps_free_memory_pointer(batch_harness):
    assert batch_harness.batchHashKeepsFreeMemoryPointer(b"\x02" * 9000)


@DIFF_SETTINGS
@given(index=u(32), offset=u(32), record=st.binary(min_size=1, max_size=200), root=b32)
def test_trace_leaf_matches_solidity(batch_harness, index, offset, record, root):
    expected = trace_leaf_hash(index, offset, record, root)
    assert bytes(batch_harness.traceLeaf(index, offset, record, root)) == expected


def test_sealed_batch_trace_root_verifies_in_solidity(batch_harness, merkle, accounts):
    # a real batch: every leaf Solidity computes from the published data proves to the header's
    # traceRoot with the builder's proof
    ledger = Ledger.genesis(
        DEVNET_MARKETS,
        Domain(31337, "0x" + "11" * 20),
        DEVNET_ORACLE,
        fee_recipient=DEVNET_OPERATOR,
    )
    builder = BatchBuilder(ledger, CheckpointHeader.genesis(ledger.state_root))
    for i, who in enumerate(accounts[:5]):
        builder.add(Deposit(i, i, who.address, 1_000_000 * (i + 1), 100 + i))
    sealed = builder.seal(timestamp=200)
    entries = decode_entries(sealed.data)
    assert [e.offset for e in entries] == trace_offsets(sealed.records)
    for e in entries:
        leaf = bytes(batch_harness.traceLeaf(e.index, e.offset, e.record, e.root_after))
        proof = sealed.trace_proof(e.index)
        root = bytes(merkle.computeRoot(leaf, e.index, proof, TRACE_TREE_DEPTH))
        assert root == sealed.header.trace_root
    assert bytes(batch_harness.batchHash(sealed.data)) == sealed.header.batch_hash
    assert bytes(batch_harness.headerHash(sealed.header.as_abi_tuple())) == sealed.header.hash


@DIFF_SETTINGS
@given(
    h=st.builds(
        CheckpointHeader,
        u(64),
        b32,
        b32,
        u(64),
        b32,
        u(64),
        b32,
        b32,
        u(64),
        u(128),
        b32,
        b32,
        u(32),
        u(32),
        u(64),
    )
)
def test_header_hash_matches_checkpoint_lib(batch_harness, h):
    assert bytes(batch_harness.headerHash(h.as_abi_tuple())) == h.hash
