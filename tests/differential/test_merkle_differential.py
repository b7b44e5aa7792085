"""Python's sparse Merkle tree against the Solidity MerkleProofLib, on random trees.

Every proof Python builds must lead the Solidity verifier to the same root; every tampered proof
(wrong index, index >= 2^depth, short or long proof, an internal node passed as a leaf, a flipped
sibling) must be rejected by both sides.
"""

import pytest
from call_reverts import revert_error
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isoperp.ledger.model import checksum_address
from isoperp.protocol.constants import STATE_TREE_DEPTH, WITHDRAWAL_TREE_DEPTH
from isoperp.protocol.header import WithdrawalLeaf
from isoperp.tree.merkle import (
    AppendOnlyTree,
    SparseMerkleTree,
    compute_root,
    hash_leaf,
    verify_proof,
)

DIFF_SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

trees = st.lists(
    st.tuples(st.integers(0, (1 << STATE_TREE_DEPTH) - 1), st.binary(min_size=1, max_size=96)),
    min_size=1,
    max_size=12,
    unique_by=lambda t: t[0],
)


def build(entries, depth=STATE_TREE_DEPTH):
    return SparseMerkleTree(depth, [(i, hash_leaf(data)) for i, data in entries])


@DIFF_SETTINGS
@given(entries=trees)
def test_random_tree_every_proof_matches_solidity(merkle, entries):
    tree = build(entries)
    for index, data in entries:
        leaf = hash_leaf(data)
        assert bytes(merkle.hashLeaf(data)) == leaf
        proof = tree.proof(index)
        solidity_root = bytes(merkle.computeRoot(leaf, index, proof, STATE_TREE_DEPTH))
        assert solidity_root == tree.root == compute_root(leaf, index, proof, STATE_TREE_DEPTH)
        assert merkle.verify(tree.root, leaf, index, proof, STATE_TREE_DEPTH)


@DIFF_SETTINGS
@given(entries=trees, flip=st.integers(0, STATE_TREE_DEPTH - 1))
def test_tampered_sibling_rejected_by_both(merkle, entries, flip):
    tree = build(entries)
    index, data = entries[0]
    proof = tree.proof(index)
    proof[flip] = bytes(b ^ 0xFF for b in proof[flip])
    leaf = hash_leaf(data)
    assert not verify_proof(tree.root, leaf, index, proof, STATE_TREE_DEPTH)
    assert not merkle.verify(tree.root, leaf, index, proof, STATE_TREE_DEPTH)


@DIFF_SETTINGS
@given(entries=trees, other=st.integers(0, (1 << STATE_TREE_DEPTH) - 1))
def test_wrong_index_rejected_by_both(merkle, entries, other):
    tree = build(entries)
    index, data = entries[0]
    if other == index:
        other ^= 1
    proof, leaf = tree.proof(index), hash_leaf(data)
    assert not verify_proof(tree.root, leaf, other, proof, STATE_TREE_DEPTH)
    assert not merkle.verify(tree.root, leaf, other, proof, STATE_TREE_DEPTH)


def test_aliased_index_beyond_depth_reverts(merkle):
    tree = build([(5, b"leaf")])
    proof, leaf = tree.proof(5), hash_leaf(b"leaf")
    aliased = 5 + (1 << STATE_TREE_DEPTH)  # same low bits: the Plasma double-index bug
    assert not verify_proof(tree.root, leaf, aliased, proof, STATE_TREE_DEPTH)
    assert revert_error(merkle, "computeRoot", leaf, aliased, proof, STATE_TREE_DEPTH) == (
        "MerkleProof_IndexOutOfRange",
        {"index": aliased, "depth": STATE_TREE_DEPTH},
    )


@pytest.mark.parametrize("delta", [-1, 1])
def test_short_or_long_proof_reverts(merkle, delta):
    tree = build([(9, b"leaf")])
    proof, leaf = tree.proof(9), hash_leaf(b"leaf")
    bad = proof[:delta] if delta < 0 else [*proof, b"\x00" * 32]
    assert not verify_proof(tree.root, leaf, 9, bad, STATE_TREE_DEPTH)
    assert revert_error(merkle, "computeRoot", leaf, 9, bad, STATE_TREE_DEPTH) == (
        "MerkleProof_WrongLength",
        {"got": len(bad), "depth": STATE_TREE_DEPTH},
    )


def test_internal_node_as_leaf_rejected(merkle):
    """The parent of two leaves, presented as a leaf one level up, must not verify."""
    tree = build([(0, b"a"), (1, b"b")])
    parent = SparseMerkleTree(STATE_TREE_DEPTH, [(0, hash_leaf(b"a")), (1, hash_leaf(b"b"))])
    node = bytes(merkle.hashNode(hash_leaf(b"a"), hash_leaf(b"b")))
    upper_proof = parent.proof(0)[1:]  # siblings above the node
    # As a depth-31 proof it is rejected for its length; padded to 32 it is a different path.
    assert revert_error(merkle, "computeRoot", node, 0, upper_proof, STATE_TREE_DEPTH) == (
        "MerkleProof_WrongLength",
        {"got": len(upper_proof), "depth": STATE_TREE_DEPTH},
    )
    padded = [b"\x00" * 32, *upper_proof]
    assert not merkle.verify(tree.root, node, 0, padded, STATE_TREE_DEPTH)
    assert not merkle.verify(tree.root, hash_leaf(node), 0, tree.proof(0), STATE_TREE_DEPTH)


@DIFF_SETTINGS
@given(count=st.integers(1, 40))
def test_withdrawal_depth_tree_matches_solidity(merkle, count):
    tree = SparseMerkleTree(WITHDRAWAL_TREE_DEPTH)
    for i in range(count):
        tree.set(i, hash_leaf(i.to_bytes(32, "big")))
    last = count - 1
    leaf = hash_leaf(last.to_bytes(32, "big"))
    root = merkle.computeRoot(leaf, last, tree.proof(last), WITHDRAWAL_TREE_DEPTH)
    assert bytes(root) == tree.root


withdrawal_leaves = st.lists(
    st.builds(
        WithdrawalLeaf,
        st.sampled_from([0, 7, (1 << 24) - 1, 0xFFFFFFFF]),
        st.binary(min_size=20, max_size=20).map(checksum_address),
        st.integers(1, (1 << 128) - 1),
    ),
    min_size=1,
    max_size=20,
)


@DIFF_SETTINGS
@given(leaves=withdrawal_leaves, data=st.data())
def test_global_withdrawals_tree_proofs_match_solidity(merkle, leaves, data):
    """The ledger's append-only withdrawals tree (frontier root) against MerkleProofLib at depth
    32: a leaf's proof at any earlier count (a checkpoint's) leads Solidity to that count's root,
    and the leaf hash is abi.encode(uint32, address, uint128) behind the 0x00 salt."""
    assert merkle.WITHDRAWAL_TREE_DEPTH() == WITHDRAWAL_TREE_DEPTH == 32
    frontier = AppendOnlyTree(WITHDRAWAL_TREE_DEPTH)
    roots = [frontier.root]
    for leaf in leaves:
        frontier.append(leaf.leaf_hash)
        roots.append(frontier.root)
    count = data.draw(st.integers(1, len(leaves)))  # a checkpoint's withdrawal count
    index = data.draw(st.integers(0, count - 1))
    leaf = leaves[index]
    encoded = (
        leaf.account_id.to_bytes(32, "big")
        + bytes(12)
        + bytes.fromhex(leaf.recipient[2:])
        + leaf.amount.to_bytes(32, "big")
    )
    assert bytes(merkle.hashLeaf(encoded)) == leaf.leaf_hash
    tree = AppendOnlyTree.sparse(WITHDRAWAL_TREE_DEPTH, (w.leaf_hash for w in leaves[:count]))
    assert tree.root == roots[count]
    proof = tree.proof(index)
    assert bytes(merkle.computeRoot(leaf.leaf_hash, index, proof, 32)) == roots[count]
    assert merkle.verify(roots[count], leaf.leaf_hash, index, proof, 32)
    if count < len(leaves):  # leaf `count` sits in a sibling subtree of the path: another root
        assert not merkle.verify(roots[-1], leaf.leaf_hash, index, proof, 32)


def test_empty_tree_root_matches(merkle):
    empty = SparseMerkleTree(STATE_TREE_DEPTH)
    root = merkle.computeRoot(b"\x00" * 32, 0, empty.proof(0), STATE_TREE_DEPTH)
    assert bytes(root) == empty.root
