"""AppendOnlyTree: the frontier root equals a sparse tree of the same leaves, whether an append
reuses the walk of the root_after that planned it or walks again."""

from isoperp.hashing import keccak256
from isoperp.tree.merkle import AppendOnlyTree

DEPTH = 32


def _leaf(i: int) -> bytes:
    return keccak256(i.to_bytes(8, "big"))


def test_append_after_root_after_of_the_same_leaf_matches_the_sparse_tree() -> None:
    tree = AppendOnlyTree(DEPTH)
    for i in range(9):
        planned = tree.root_after(_leaf(i))
        assert tree.append(_leaf(i)) == i
        assert tree.root == planned
        assert tree.root == AppendOnlyTree.sparse(DEPTH, map(_leaf, range(i + 1))).root


def test_append_of_another_leaf_than_planned_walks_again() -> None:
    tree = AppendOnlyTree(DEPTH)
    tree.append(_leaf(0))
    tree.root_after(_leaf(100))  # planned, then abandoned (a rejected plan)
    tree.append(_leaf(1))
    assert tree.root == AppendOnlyTree.sparse(DEPTH, [_leaf(0), _leaf(1)]).root


def test_a_stale_plan_is_not_reused_after_the_count_moved() -> None:
    tree = AppendOnlyTree(DEPTH)
    tree.root_after(_leaf(7))  # planned at count 0
    tree.append(_leaf(0))
    tree.append(_leaf(7))  # same leaf, but now at count 1
    assert tree.root == AppendOnlyTree.sparse(DEPTH, [_leaf(0), _leaf(7)]).root


def test_copy_does_not_carry_the_plan() -> None:
    tree = AppendOnlyTree(DEPTH)
    tree.root_after(_leaf(3))
    other = tree.copy()
    other.append(_leaf(3))
    assert other.root == AppendOnlyTree.sparse(DEPTH, [_leaf(3)]).root
    assert tree.count == 0
