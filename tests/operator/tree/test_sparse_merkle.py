"""The sparse Merkle tree against a dense reference implementation; proofs and their bounds."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from isoperp.errors import ProtocolError
from isoperp.hashing import keccak256
from isoperp.tree.merkle import (
    EMPTY,
    SparseMerkleTree,
    compute_root,
    hash_leaf,
    hash_node,
    verify_proof,
    zero_hashes,
)

DEPTH = 6


def dense_root(leaves: dict[int, bytes], depth: int) -> bytes:
    """Hashes every node of a full tree of 2^depth leaves (the obviously-correct reference)."""
    level = [leaves.get(i, EMPTY) for i in range(1 << depth)]
    for _ in range(depth):
        level = [keccak256(b"\x01" + level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


hashes = st.binary(min_size=32, max_size=32)
ops = st.lists(
    st.tuples(st.integers(0, (1 << DEPTH) - 1), st.one_of(hashes, st.just(EMPTY))), max_size=40
)


def test_hash_leaf_and_node_are_salted() -> None:
    assert hash_leaf(b"abc") == keccak256(b"\x00abc")
    assert hash_node(b"\x01" * 32, b"\x02" * 32) == keccak256(b"\x01" + b"\x01" * 32 + b"\x02" * 32)
    assert hash_leaf(b"\x01" * 64) != hash_node(b"\x01" * 32, b"\x01" * 32)


def test_empty_tree_root_is_zero_hash_of_depth() -> None:
    zeros = zero_hashes(32)
    assert zeros[0] == EMPTY
    assert zeros[1] == keccak256(b"\x01" + EMPTY + EMPTY)
    assert SparseMerkleTree(32).root == zeros[32]
    assert SparseMerkleTree(DEPTH).root == dense_root({}, DEPTH)


@settings(max_examples=60)
@given(ops)
def test_tree_random_updates_match_dense_reference(updates: list[tuple[int, bytes]]) -> None:
    tree = SparseMerkleTree(DEPTH)
    leaves: dict[int, bytes] = {}
    for index, leaf in updates:
        tree.set(index, leaf)
        if leaf == EMPTY:
            leaves.pop(index, None)
        else:
            leaves[index] = leaf
        if index % 3 == 0:  # read roots mid-way too: exercises the incremental flush
            assert tree.root == dense_root(leaves, DEPTH)
    assert tree.root == dense_root(leaves, DEPTH)
    assert len(tree) == len(leaves)
    assert SparseMerkleTree(DEPTH, leaves.items()).root == tree.root
    for index in range(1 << DEPTH):
        proof = tree.proof(index)
        assert verify_proof(tree.root, leaves.get(index, EMPTY), index, proof, DEPTH)
        assert tree.get(index) == leaves.get(index, EMPTY)


def test_tree_set_empty_clears_slot() -> None:
    tree = SparseMerkleTree(DEPTH)
    empty_root = tree.root
    tree.set(5, b"\x07" * 32)
    assert tree.root != empty_root
    tree.set(5, EMPTY)
    assert tree.root == empty_root and len(tree) == 0


def test_tree_copy_is_independent() -> None:
    tree = SparseMerkleTree(DEPTH, [(1, b"\x01" * 32)])
    other = tree.copy()
    other.set(2, b"\x02" * 32)
    assert tree.root == dense_root({1: b"\x01" * 32}, DEPTH)
    assert other.root == dense_root({1: b"\x01" * 32, 2: b"\x02" * 32}, DEPTH)


def test_proof_wrong_length_or_index_rejects() -> None:
    tree = SparseMerkleTree(DEPTH, [(3, b"\x03" * 32)])
    proof = tree.proof(3)
    assert verify_proof(tree.root, b"\x03" * 32, 3, proof, DEPTH)
    assert not verify_proof(tree.root, b"\x03" * 32, 3, proof[:-1], DEPTH)
    assert not verify_proof(tree.root, b"\x03" * 32, 3, [*proof, EMPTY], DEPTH)
    # the aliased index 3 + 2^depth (Plasma #546) is refused
    assert not verify_proof(tree.root, b"\x03" * 32, 3 + (1 << DEPTH), proof, DEPTH)
    assert not verify_proof(tree.root, b"\x03" * 32, 4, proof, DEPTH)
    with pytest.raises(ProtocolError):
        compute_root(b"\x03" * 32, -1, proof, DEPTH)


def test_internal_node_cannot_pass_as_leaf() -> None:
    tree = SparseMerkleTree(2, [(0, b"\x0a" * 32), (1, b"\x0b" * 32)])
    node = hash_node(b"\x0a" * 32, b"\x0b" * 32)
    # a 1-level proof of the node would need a shorter proof: the length check refuses it
    assert not verify_proof(tree.root, node, 0, [tree.proof(0)[1]], 2)


def test_tree_bad_index_and_hash_raise() -> None:
    tree = SparseMerkleTree(DEPTH)
    with pytest.raises(ProtocolError):
        tree.set(1 << DEPTH, b"\x01" * 32)
    with pytest.raises(ProtocolError):
        tree.set(0, b"\x01" * 31)
    with pytest.raises(ProtocolError):
        tree.proof(-1)
    with pytest.raises(ValueError):
        SparseMerkleTree(0)
