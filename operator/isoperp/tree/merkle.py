"""Fixed-depth sparse Merkle tree (docs/PROTOCOL.md, section 2).

leaf hash = keccak(0x00 ‖ leaf bytes) (the caller computes it, see ``hash_leaf``), empty slot =
32 zero bytes, node = keccak(0x01 ‖ left ‖ right). Only non-empty subtrees are stored. Updates are
incremental:
``set`` marks a leaf dirty and the next ``root``/``proof`` recomputes only the dirty paths, once per
shared ancestor. Pure computation, no I/O.

The flush runs in C when the optional extension ``isoperp.tree._fastmerkle`` was built (``FAST``),
unless the environment sets ``ISOPERP_PURE_PYTHON=1``; ``SparseMerkleTree._flush_python`` is the
reference it is tested against and the fallback.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from functools import cache

from isoperp.errors import ProtocolError
from isoperp.hashing import keccak256
from isoperp.protocol.constants import LEAF_SALT, NODE_SALT

EMPTY = b"\x00" * 32

_c_flush: Callable[[list[dict[int, bytes]], tuple[bytes, ...], set[int], int], None] | None
if os.environ.get("ISOPERP_PURE_PYTHON") == "1":
    _c_flush = None
else:
    try:
        from isoperp.tree._fastmerkle import flush as _c_flush
    except ImportError:  # not built (no compiler at install time): the Python flush below
        _c_flush = None

FAST = _c_flush is not None
"""Whether trees flush through the C extension."""


def hash_leaf(leaf_bytes: bytes) -> bytes:
    """keccak256(0x00 ‖ leaf_bytes)."""
    return keccak256(LEAF_SALT + leaf_bytes)


def hash_node(left: bytes, right: bytes) -> bytes:
    """keccak256(0x01 ‖ left ‖ right)."""
    return keccak256(NODE_SALT + left + right)


@cache
def zero_hashes(depth: int) -> tuple[bytes, ...]:
    """Z[0..depth]: Z[0] = empty leaf, Z[h+1] = node(Z[h], Z[h])."""
    zeros = [EMPTY]
    for _ in range(depth):
        zeros.append(hash_node(zeros[-1], zeros[-1]))
    return tuple(zeros)


def compute_root(leaf_hash: bytes, index: int, proof: Sequence[bytes], depth: int) -> bytes:
    """The root that ``proof`` leads to; enforces proof length == depth and 0 <= index < 2^depth."""
    if len(proof) != depth:
        raise ProtocolError(f"proof has {len(proof)} siblings, depth is {depth}", code="bad_proof")
    if not 0 <= index < (1 << depth):
        raise ProtocolError(f"index {index} out of range for depth {depth}", code="bad_proof")
    node = leaf_hash
    for height, sibling in enumerate(proof):
        is_right = (index >> height) & 1
        node = hash_node(sibling, node) if is_right else hash_node(node, sibling)
    return node


def verify_proof(
    root: bytes, leaf_hash: bytes, index: int, proof: Sequence[bytes], depth: int
) -> bool:
    """Whether ``proof`` proves ``leaf_hash`` at ``index`` under ``root`` (False if malformed)."""
    try:
        return compute_root(leaf_hash, index, proof, depth) == root
    except ProtocolError:
        return False


class SparseMerkleTree:
    """A sparse Merkle tree of fixed ``depth`` over 32-byte leaf hashes."""

    __slots__ = ("_dirty", "_levels", "_zeros", "depth")

    def __init__(self, depth: int, leaves: Iterable[tuple[int, bytes]] = ()) -> None:
        if not 1 <= depth <= 64:
            raise ValueError(f"depth must be in [1, 64], got {depth}")
        self.depth = depth
        self._zeros = zero_hashes(depth)
        # _levels[h] maps index at height h -> hash, for non-empty subtrees only (h = 0: leaves).
        self._levels: list[dict[int, bytes]] = [{} for _ in range(depth + 1)]
        self._dirty: set[int] = set()
        for index, leaf_hash in leaves:
            self.set(index, leaf_hash)

    def _check_index(self, index: int) -> None:
        if not 0 <= index < (1 << self.depth):
            raise ProtocolError(
                f"index {index} out of range for depth {self.depth}", code="bad_index"
            )

    def set(self, index: int, leaf_hash: bytes) -> None:
        """Sets the leaf hash at ``index`` (``EMPTY`` clears the slot)."""
        self._check_index(index)
        if len(leaf_hash) != 32:
            raise ProtocolError("leaf hash must be 32 bytes", code="bad_leaf")
        leaves = self._levels[0]
        if leaf_hash == EMPTY:
            if leaves.pop(index, None) is None:
                return
        elif leaves.get(index) == leaf_hash:
            return
        else:
            leaves[index] = leaf_hash
        self._dirty.add(index)

    def get(self, index: int) -> bytes:
        """The leaf hash at ``index`` (``EMPTY`` when the slot is empty)."""
        self._check_index(index)
        return self._levels[0].get(index, EMPTY)

    def __len__(self) -> int:
        return len(self._levels[0])

    def _flush_python(self) -> None:
        """Recomputes every dirty path once, level by level (the reference implementation of the
        flush; names are bound locally, it is the hot loop of the operator without the C one)."""
        dirty = self._dirty
        if not dirty:
            return
        levels, zeros = self._levels, self._zeros
        node = keccak256
        salt = NODE_SALT
        for height in range(self.depth):
            get = levels[height].get
            above = levels[height + 1]
            zero = zeros[height]
            parents = {i >> 1 for i in dirty}
            for parent in parents:
                left = get(parent << 1, zero)
                right = get((parent << 1) | 1, zero)
                if left is zero and right is zero:
                    above.pop(parent, None)
                else:
                    above[parent] = node(salt + left + right)
            dirty = parents
        self._dirty = set()

    def _flush_c(self) -> None:
        """``_flush_python`` through the C extension (only when ``FAST``)."""
        if self._dirty:
            assert _c_flush is not None
            _c_flush(self._levels, self._zeros, self._dirty, self.depth)
            self._dirty = set()

    _flush = _flush_c if FAST else _flush_python

    @property
    def root(self) -> bytes:
        self._flush()
        return self._levels[self.depth].get(0, self._zeros[self.depth])

    def proof(self, index: int) -> list[bytes]:
        """The ``depth`` sibling hashes of ``index``, bottom-up."""
        self._check_index(index)
        self._flush()
        siblings = []
        for height in range(self.depth):
            siblings.append(self._levels[height].get((index >> height) ^ 1, self._zeros[height]))
        return siblings

    def copy(self) -> SparseMerkleTree:
        other = SparseMerkleTree.__new__(SparseMerkleTree)
        other.depth = self.depth
        other._zeros = self._zeros
        self._flush()
        other._levels = [dict(level) for level in self._levels]
        other._dirty = set()
        return other


class AppendOnlyTree:
    """The root of a fixed-``depth`` Merkle tree (same hashing and empty slots as
    ``SparseMerkleTree``) whose leaves are only ever appended at index ``count``: the global
    withdrawals tree. It keeps the frontier (one left-subtree root per height, the deposit
    contract's technique), so an append and the root cost ``O(depth)`` hashes and a copy is
    ``O(depth)``, whatever the number of leaves. Proofs need every leaf: build a
    ``SparseMerkleTree`` from them (``sparse``)."""

    __slots__ = ("_branch", "_pending", "_root", "_zeros", "count", "depth")

    def __init__(self, depth: int) -> None:
        if not 1 <= depth <= 64:
            raise ValueError(f"depth must be in [1, 64], got {depth}")
        self.depth = depth
        self.count = 0
        self._zeros = zero_hashes(depth)
        self._branch: list[bytes] = [EMPTY] * depth
        self._root = self._zeros[depth]
        # The last walk ``root_after`` made (count, leaf hash, root, frontier): a ledger plans an
        # append (root_after) and then commits it (append); the commit reuses the walk.
        self._pending: tuple[int, bytes, bytes, list[bytes]] | None = None

    @property
    def root(self) -> bytes:
        return self._root

    def _walk(self, leaf_hash: bytes) -> tuple[bytes, list[bytes]]:
        """The root and the frontier after appending ``leaf_hash`` at ``count`` (no mutation)."""
        if len(leaf_hash) != 32:
            raise ProtocolError("leaf hash must be 32 bytes", code="bad_leaf")
        index = self.count
        if index >> self.depth:
            raise ProtocolError(f"the tree of depth {self.depth} is full", code="tree_full")
        branch = list(self._branch)
        zeros = self._zeros
        node = leaf_hash
        stored = False
        for height in range(self.depth):
            if (index >> height) & 1:
                node = hash_node(branch[height], node)
            else:
                if not stored:  # the lowest height where the new leaf's subtree is a left child
                    branch[height] = node
                    stored = True
                node = hash_node(node, zeros[height])
        return node, branch

    def root_after(self, leaf_hash: bytes) -> bytes:
        """The root once ``leaf_hash`` is appended, without appending it."""
        root, branch = self._walk(leaf_hash)
        self._pending = (self.count, leaf_hash, root, branch)
        return root

    def append(self, leaf_hash: bytes) -> int:
        """Appends ``leaf_hash`` at index ``count``; returns that index."""
        pending = self._pending
        if pending is not None and pending[0] == self.count and pending[1] == leaf_hash:
            self._root, self._branch = pending[2], pending[3]
        else:
            self._root, self._branch = self._walk(leaf_hash)
        self._pending = None
        self.count += 1
        return self.count - 1

    def copy(self) -> AppendOnlyTree:
        other = AppendOnlyTree.__new__(AppendOnlyTree)
        other.depth = self.depth
        other.count = self.count
        other._zeros = self._zeros
        other._branch = list(self._branch)
        other._root = self._root
        other._pending = None
        return other

    @staticmethod
    def sparse(depth: int, leaf_hashes: Iterable[bytes]) -> SparseMerkleTree:
        """The ``SparseMerkleTree`` holding ``leaf_hashes`` at indices 0, 1, ... (for proofs)."""
        return SparseMerkleTree(depth, enumerate(leaf_hashes))
