"""MerkleProofLib against the reference tree (isoperp.tree.merkle), through MerkleProofHarness."""

from __future__ import annotations

import random
from typing import Any

import pytest

from isoperp.hashing import keccak256
from isoperp.protocol import constants
from isoperp.tree.merkle import (
    EMPTY,
    SparseMerkleTree,
    compute_root,
    hash_leaf,
    hash_node,
    zero_hashes,
)

SEED = 20261123


@pytest.fixture(scope="session")
def harness(project: Any, deployer: Any) -> Any:
    return deployer.deploy(project.MerkleProofHarness)


def _random_tree(rng: random.Random, depth: int, n: int) -> tuple[SparseMerkleTree, list[int]]:
    tree = SparseMerkleTree(depth)
    indices = sorted({rng.randrange(1 << depth) for _ in range(n)})
    for i in indices:
        tree.set(i, hash_leaf(rng.randbytes(rng.randrange(1, 200))))
    return tree, indices


def test_constants_match_protocol_succeeds(harness: Any) -> None:
    assert harness.STATE_TREE_DEPTH() == constants.STATE_TREE_DEPTH == 32
    assert harness.WITHDRAWAL_TREE_DEPTH() == constants.WITHDRAWAL_TREE_DEPTH == 32
    assert harness.TRACE_TREE_DEPTH() == constants.TRACE_TREE_DEPTH == 20


# ---------------------------------------------------------------- hashLeaf / hashNode


def test_hashLeaf_matches_reference_succeeds(harness: Any) -> None:
    rng = random.Random(SEED)
    for length in [0, 1, 31, 32, 33, 64, 96, 97, 255, 480, *[rng.randrange(600) for _ in range(8)]]:
        data = rng.randbytes(length)
        assert bytes(harness.hashLeaf(data)) == hash_leaf(data) == keccak256(b"\x00" + data)


def test_hashLeaf_leaves_data_unchanged_succeeds(harness: Any) -> None:
    for data in (b"", b"\x07", bytes(range(100))):
        h, after = harness.hashLeafKeepsData(data)
        assert bytes(h) == hash_leaf(data)
        assert bytes(after) == data


def test_hashNode_matches_reference_succeeds(harness: Any) -> None:
    rng = random.Random(SEED + 1)
    for _ in range(10):
        a, b = rng.randbytes(32), rng.randbytes(32)
        assert bytes(harness.hashNode(a, b)) == hash_node(a, b) == keccak256(b"\x01" + a + b)


def test_hashNode_restores_free_memory_pointer_succeeds(harness: Any) -> None:
    assert harness.hashNodeKeepsFreeMemoryPointer(b"\xaa" * 32, b"\xbb" * 32)


def test_hashLeaf_and_hashNode_domains_differ_succeeds(harness: Any) -> None:
    # An internal node's 64-byte preimage hashed as a leaf is not the node: the salts differ.
    a, b = keccak256(b"a"), keccak256(b"b")
    assert bytes(harness.hashLeaf(a + b)) != bytes(harness.hashNode(a, b))


# ---------------------------------------------------------------- computeRoot


@pytest.mark.parametrize("depth", [1, 3, 16, 20, 32])
def test_computeRoot_random_trees_match_reference_succeeds(harness: Any, depth: int) -> None:
    rng = random.Random(SEED + depth)
    tree, indices = _random_tree(rng, depth, 12)
    root = tree.root
    probes = indices[:6] + [rng.randrange(1 << depth) for _ in range(3)]  # also empty slots
    for index in probes:
        proof = tree.proof(index)
        leaf = tree.get(index)
        expected = compute_root(leaf, index, proof, depth)
        assert expected == root
        assert bytes(harness.computeRoot(leaf, index, proof, depth)) == root


def test_computeRoot_empty_tree_is_zero_hash_succeeds(harness: Any) -> None:
    for depth in (16, 32):
        zeros = zero_hashes(depth)
        root = harness.computeRoot(EMPTY, 0, list(zeros[:depth]), depth)
        assert bytes(root) == zeros[depth] == SparseMerkleTree(depth).root


def test_computeRoot_depth_zero_returns_leaf_succeeds(harness: Any) -> None:
    leaf = keccak256(b"leaf")
    assert bytes(harness.computeRoot(leaf, 0, [], 0)) == leaf


def test_computeRoot_index_bits_select_sides_succeeds(harness: Any) -> None:
    leaf, s0, s1 = keccak256(b"l"), keccak256(b"s0"), keccak256(b"s1")
    # index 0b10: height 0 left child, height 1 right child.
    expected = hash_node(s1, hash_node(leaf, s0))
    assert bytes(harness.computeRoot(leaf, 2, [s0, s1], 2)) == expected


@pytest.mark.parametrize("got", [15, 17, 0])
def test_computeRoot_wrong_length_reverts(
    harness: Any, deployer: Any, reverts: Any, got: int
) -> None:
    with reverts(harness.MerkleProof_WrongLength, got=got, depth=16):
        harness.computeRoot.transact(EMPTY, 0, [EMPTY] * got, 16, sender=deployer)


@pytest.mark.parametrize("index", [1 << 16, (1 << 16) + 5, 2**256 - 1])
def test_computeRoot_index_out_of_range_reverts(
    harness: Any, deployer: Any, reverts: Any, index: int
) -> None:
    with reverts(harness.MerkleProof_IndexOutOfRange, index=index, depth=16):
        harness.computeRoot.transact(EMPTY, index, [EMPTY] * 16, 16, sender=deployer)


def test_computeRoot_depth_256_accepts_max_index_succeeds(harness: Any) -> None:
    # 1 << 256 wraps to 0; the bound is `index >> depth != 0`, so depth 256 still works.
    root = harness.computeRoot(EMPTY, 2**256 - 1, [EMPTY] * 256, 256)
    assert bytes(root) == compute_root(EMPTY, 2**256 - 1, [EMPTY] * 256, 256)


# ---------------------------------------------------------------- verify


def test_verify_valid_proof_succeeds(harness: Any) -> None:
    rng = random.Random(SEED + 100)
    tree, indices = _random_tree(rng, 32, 20)
    for index in indices[:5]:
        assert harness.verify(tree.root, tree.get(index), index, tree.proof(index), 32)


def test_verify_tampered_inputs_returns_false_succeeds(harness: Any) -> None:
    rng = random.Random(SEED + 101)
    tree, indices = _random_tree(rng, 16, 10)
    index, other = indices[0], indices[1]
    root, leaf, proof = tree.root, tree.get(index), tree.proof(index)
    bad_proof = list(proof)
    bad_proof[7] = keccak256(bad_proof[7])
    assert not harness.verify(root, leaf, index, bad_proof, 16)  # tampered sibling
    assert not harness.verify(root, keccak256(leaf), index, proof, 16)  # tampered leaf
    assert not harness.verify(root, leaf, other, proof, 16)  # another index
    assert not harness.verify(keccak256(root), leaf, index, proof, 16)  # another root
    assert not harness.verify(root, EMPTY, index, proof, 16)  # the slot claimed empty


def test_verify_internal_node_as_leaf_returns_false_succeeds(harness: Any) -> None:
    # The parent of leaves 0 and 1, proven as if it were the leaf at index 0 of the same-depth tree.
    tree = SparseMerkleTree(16, [(0, keccak256(b"x")), (1, keccak256(b"y"))])
    parent = hash_node(tree.get(0), tree.get(1))
    proof = tree.proof(0)
    assert not harness.verify(tree.root, parent, 0, proof, 16)


def test_verify_aliased_index_reverts(harness: Any, deployer: Any, reverts: Any) -> None:
    # Plasma #546: index + 2^depth takes the same path bits, so it must be refused, not "verified".
    tree = SparseMerkleTree(16, [(5, keccak256(b"leaf"))])
    with reverts(harness.MerkleProof_IndexOutOfRange, index=5 + (1 << 16), depth=16):
        harness.verify.transact(
            tree.root, tree.get(5), 5 + (1 << 16), tree.proof(5), 16, sender=deployer
        )


def test_verify_wrong_length_reverts(harness: Any, deployer: Any, reverts: Any) -> None:
    # The internal node at height 1 "proven" with the remaining 15 siblings: rejected by length.
    tree = SparseMerkleTree(16, [(0, keccak256(b"x")), (1, keccak256(b"y"))])
    parent = hash_node(tree.get(0), tree.get(1))
    with reverts(harness.MerkleProof_WrongLength, got=15, depth=16):
        harness.verify.transact(tree.root, parent, 0, tree.proof(0)[1:], 16, sender=deployer)
