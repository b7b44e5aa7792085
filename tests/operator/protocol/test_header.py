"""Checkpoint header encoding and hashing against eth_abi; withdrawal and trace leaves."""

from eth_abi import encode
from hypothesis import given
from hypothesis import strategies as st

from isoperp.hashing import keccak256
from isoperp.protocol.header import CheckpointHeader, WithdrawalLeaf, trace_leaf_hash
from isoperp.tree.merkle import hash_leaf

HEADER_TYPE = (
    "(uint64,bytes32,bytes32,uint64,bytes32,uint64,bytes32,bytes32,uint64,uint128,"
    "bytes32,bytes32,uint32,uint32,uint64)"
)
b32 = st.binary(min_size=32, max_size=32)
u = lambda bits: st.integers(0, (1 << bits) - 1)  # noqa: E731


@given(
    st.builds(
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
def test_header_encoding_is_abi_encode(h):
    assert h.encode() == encode([HEADER_TYPE], [h.as_abi_tuple()])
    assert h.hash == keccak256(h.encode())


def test_genesis_header_is_zero_but_root():
    root = b"\x42" * 32
    g = CheckpointHeader.genesis(root)
    assert g.seq == 0 and g.state_root == root
    z = b"\0" * 32
    fields = (0, z, root, 0, z, 0, z, z, 0, 0, z, z, 0, 0, 0)
    assert g.encode() == encode([HEADER_TYPE], [fields])


def test_withdrawal_leaf_hash():
    leaf = WithdrawalLeaf(7, "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", 250_000_000)
    expected = hash_leaf(encode(["uint32", "address", "uint128"], [7, leaf.recipient, 250_000_000]))
    assert leaf.leaf_hash == expected


def test_trace_leaf_hash():
    record, root = b"\x01abc", b"\x09" * 32
    expected = hash_leaf(
        encode(["uint32", "uint32", "bytes32", "bytes32"], [3, 300, keccak256(record), root])
    )
    assert trace_leaf_hash(3, 300, record, root) == expected
    assert trace_leaf_hash(3, 301, record, root) != expected  # the offset is committed
