"""The optional C extension ``isoperp.tree._fastmerkle`` against the pure-Python reference:
keccak256 against safe-pysha3, the C flush against ``SparseMerkleTree._flush_python`` (same roots,
same ``_levels``, same proofs) with every node-hashing kernel the machine has, malformed input,
reference counts, and the whole tree suite (test_sparse_merkle.py) run with each flush.

The C-specific tests skip when the extension was not built, unless ISOPERP_REQUIRE_FAST=1 (as
``make test`` sets), which turns a missing extension into failures."""

from __future__ import annotations

import importlib.util
import os
import random
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sha3
from hypothesis import given, settings
from hypothesis import strategies as st

from isoperp import hashing
from isoperp.tree import merkle
from isoperp.tree.merkle import EMPTY, SparseMerkleTree, verify_proof, zero_hashes

fm: ModuleType | None
try:
    from isoperp.tree import _fastmerkle as fm
except ImportError:  # not built
    fm = None

REQUIRE_FAST = os.environ.get("ISOPERP_REQUIRE_FAST") == "1"
PURE_PYTHON = os.environ.get("ISOPERP_PURE_PYTHON") == "1"
KERNELS: tuple[str, ...] = fm.impls() if fm is not None else ("scalar",)


@pytest.fixture(scope="module")
def c() -> ModuleType:
    """The extension; a skip when it was not built, a failure if ISOPERP_REQUIRE_FAST=1."""
    if fm is None:
        if REQUIRE_FAST:
            pytest.fail("isoperp.tree._fastmerkle is not built and ISOPERP_REQUIRE_FAST=1")
        pytest.skip("isoperp.tree._fastmerkle is not built (no C compiler at install time?)")
    return fm


def use_kernel(c: ModuleType, kernel: str) -> Callable[[], None]:
    """Selects a node-hashing kernel; returns the undo."""
    previous = c.impl()
    c.set_impl(kernel)
    return lambda: c.set_impl(previous)


class PyTree(SparseMerkleTree):
    """Flushes through the Python reference."""

    __slots__ = ()
    _flush = SparseMerkleTree._flush_python


class CTree(SparseMerkleTree):
    """Flushes through the extension (whatever ISOPERP_PURE_PYTHON says)."""

    __slots__ = ()

    def _flush(self) -> None:
        assert fm is not None
        if self._dirty:
            fm.flush(self._levels, self._zeros, self._dirty, self.depth)
            self._dirty = set()


def assert_same(a: SparseMerkleTree, b: SparseMerkleTree, indices: list[int]) -> None:
    assert a.root == b.root
    assert a._levels == b._levels
    assert not a._dirty and not b._dirty
    for index in indices:
        proof = a.proof(index)
        assert proof == b.proof(index)
        assert verify_proof(a.root, a.get(index), index, proof, a.depth)


# ---------------------------------------------------------------------------------------------
# keccak256


def test_extension_is_built_when_required() -> None:
    if fm is None and not REQUIRE_FAST:
        pytest.skip("isoperp.tree._fastmerkle is not built")
    assert fm is not None, "ISOPERP_REQUIRE_FAST=1 but isoperp.tree._fastmerkle is not built"
    assert fm.impl() in fm.impls() and "scalar" in fm.impls()


def test_keccak256_matches_pysha3_on_every_length(c: ModuleType) -> None:
    rng = random.Random(7)
    lengths = [*range(301), 135, 136, 137, 271, 272, 273, 1000, 4096, 70_000]
    for length in lengths:
        data = rng.randbytes(length)
        assert c.keccak256(data) == sha3.keccak_256(data).digest(), length
    assert c.keccak256(b"").hex() == (
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )


def test_keccak256_takes_bytes_like_objects(c: ModuleType) -> None:
    data = bytes(range(200))
    expected = sha3.keccak_256(data).digest()
    assert c.keccak256(bytearray(data)) == expected
    assert c.keccak256(memoryview(data)) == expected
    assert c.keccak256(memoryview(data)[10:150]) == sha3.keccak_256(data[10:150]).digest()
    # a large input (the GIL is released while hashing it)
    big = bytearray(200_000)
    assert c.keccak256(big) == sha3.keccak_256(bytes(big)).digest()


@pytest.mark.parametrize("bad", ["abc", 5, None, [1, 2]])
def test_keccak256_rejects_non_bytes(c: ModuleType, bad: Any) -> None:
    with pytest.raises(TypeError):
        c.keccak256(bad)


def test_hashing_uses_the_extension_unless_pure_python() -> None:
    if fm is not None and not PURE_PYTHON:
        assert hashing.BACKEND == "isoperp-c" and hashing.keccak256 is fm.keccak256
        assert merkle.FAST and SparseMerkleTree._flush is SparseMerkleTree._flush_c
    else:
        assert hashing.BACKEND != "isoperp-c"
        assert not merkle.FAST and SparseMerkleTree._flush is SparseMerkleTree._flush_python
    assert hashing.keccak256(b"isoperp") == sha3.keccak_256(b"isoperp").digest()


def test_pure_python_env_var_selects_the_fallback() -> None:
    code = (
        "import isoperp.hashing as h, isoperp.tree.merkle as m;"
        "print(h.BACKEND, m.FAST, m.SparseMerkleTree._flush is m.SparseMerkleTree._flush_python)"
    )
    env = {**os.environ, "ISOPERP_PURE_PYTHON": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[1:] == ["False", "True"] and out[0] != "isoperp-c"


# ---------------------------------------------------------------------------------------------
# flush: differential against the Python reference


def index_strategy(depth: int) -> st.SearchStrategy[int]:
    top = (1 << depth) - 1
    # clustered indices share long paths (both children dirty), spread ones do not
    return st.one_of(
        st.integers(0, min(top, 31)),
        st.integers(max(0, top - 7), top),
        st.integers(0, top),
        st.integers(0, min(top, 255)).map(lambda i: (i << max(0, depth - 8)) & top),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[int, list[tuple[int, bytes, bool]]]:
    depth = draw(st.sampled_from([1, 16, 32]))
    value = st.one_of(st.binary(min_size=32, max_size=32), st.just(EMPTY))
    ops = draw(st.lists(st.tuples(index_strategy(depth), value, st.integers(0, 4)), max_size=80))
    return depth, [(index, leaf, read == 0) for index, leaf, read in ops]


@pytest.mark.parametrize("kernel", KERNELS)
@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_c_flush_matches_python_flush(
    c: ModuleType, kernel: str, scenario: tuple[int, list[tuple[int, bytes, bool]]]
) -> None:
    depth, ops = scenario
    undo = use_kernel(c, kernel)
    try:
        py, fast = PyTree(depth), CTree(depth)
        touched: list[int] = []
        for index, leaf, read_root in ops:
            py.set(index, leaf)
            fast.set(index, leaf)
            touched.append(index)
            if read_root:  # flush mid-way too: incremental updates over earlier C/Python flushes
                assert fast.root == py.root
                assert fast._levels == py._levels
        assert_same(fast, py, [*touched[-8:], 0, (1 << depth) - 1])
        # a tree built in one go, and a copy, agree too
        rebuilt = CTree(depth, ((i, h) for i, h in py._levels[0].items()))
        assert rebuilt.root == py.root and rebuilt._levels == py._levels
    finally:
        undo()


@pytest.mark.parametrize("kernel", KERNELS)
def test_c_flush_matches_python_on_wide_levels(c: ModuleType, kernel: str) -> None:
    """Levels of 1..40 dirty nodes at once, so every batch size of every kernel is hashed."""
    undo = use_kernel(c, kernel)
    try:
        rng = random.Random(kernel)
        for count in range(1, 41):
            py, fast = PyTree(20), CTree(20)
            indices = rng.sample(range(1 << 20), count)
            for index in indices:
                leaf = rng.randbytes(32)
                py.set(index, leaf)
                fast.set(index, leaf)
            assert_same(fast, py, indices[:3])
            for index in indices[::2]:  # clear half: pops along the way
                py.set(index, EMPTY)
                fast.set(index, EMPTY)
            assert_same(fast, py, indices[:3])
    finally:
        undo()


def test_c_flush_clears_back_to_the_empty_tree(c: ModuleType) -> None:
    fast = CTree(32)
    empty_levels = [dict(level) for level in fast._levels]
    for index in (0, 1, 2, 77, 2**31, 2**32 - 1):
        fast.set(index, b"\x05" * 32)
    assert fast.root != zero_hashes(32)[32]
    for index in (0, 1, 2, 77, 2**31, 2**32 - 1):
        fast.set(index, EMPTY)
    assert fast.root == zero_hashes(32)[32]
    assert fast._levels == empty_levels


def test_c_flush_depth_64_and_large_indices(c: ModuleType) -> None:
    py, fast = PyTree(64), CTree(64)
    for index in (0, 2**63, 2**64 - 1, 2**64 - 2, 12345678901234567):
        py.set(index, index.to_bytes(32, "big"))
        fast.set(index, index.to_bytes(32, "big"))
    assert_same(fast, py, [0, 2**64 - 1])


# ---------------------------------------------------------------------------------------------
# flush: malformed input raises, never crashes


def fresh_args(depth: int = 4) -> tuple[list[dict[int, Any]], tuple[bytes, ...], set[int], int]:
    levels: list[dict[int, Any]] = [{} for _ in range(depth + 1)]
    levels[0][3] = b"\x03" * 32
    return levels, zero_hashes(depth), {3}, depth


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda a: (tuple(a[0]), *a[1:]), TypeError),  # levels not a list
        (lambda a: (a[0], list(a[1]), *a[2:]), TypeError),  # zeros not a tuple
        (lambda a: (a[0], a[1], [3], a[3]), TypeError),  # dirty not a set
        (lambda a: (*a[:3], 4.0), TypeError),  # depth not an int
        (lambda a: (a[0][:3], *a[1:]), ValueError),  # too few levels
        (lambda a: (a[0], a[1][:3], *a[2:]), ValueError),  # too few zeros
        (lambda a: (*a[:3], -1), ValueError),
        (lambda a: (a[0], ("x" * 32, *a[1][1:]), *a[2:]), TypeError),  # zero hash not bytes
        (lambda a: (a[0], (b"\x00" * 31, *a[1][1:]), *a[2:]), ValueError),  # zero hash length
        (lambda a: (a[0], a[1], {"3"}, a[3]), TypeError),  # dirty index not an int
        (lambda a: (a[0], a[1], {-1}, a[3]), ValueError),
        (lambda a: (a[0], a[1], {2**64}, a[3]), ValueError),
        (lambda a: ([a[0][0], [], *a[0][2:]], *a[1:]), TypeError),  # a level not a dict
    ],
)
def test_flush_rejects_malformed_arguments(
    c: ModuleType, mutate: Callable[[tuple[Any, ...]], tuple[Any, ...]], error: type
) -> None:
    with pytest.raises(error):
        c.flush(*mutate(fresh_args()))


@pytest.mark.parametrize(
    ("value", "error"),
    [("x" * 32, TypeError), (b"\x01" * 31, ValueError), (b"\x01" * 33, ValueError), (7, TypeError)],
)
def test_flush_rejects_bad_node_values(c: ModuleType, value: Any, error: type) -> None:
    levels, zeros, dirty, depth = fresh_args()
    levels[0][3] = value  # the dirty leaf itself
    with pytest.raises(error):
        c.flush(levels, zeros, dirty, depth)
    levels, zeros, dirty, depth = fresh_args()
    levels[0][2] = value  # its sibling
    with pytest.raises(error):
        c.flush(levels, zeros, dirty, depth)
    levels, zeros, dirty, depth = fresh_args()
    levels[2][1] = value  # a sibling higher up
    with pytest.raises(error):
        c.flush(levels, zeros, dirty, depth)


def test_flush_rejects_aliased_levels_and_wrong_arity(c: ModuleType) -> None:
    levels, zeros, dirty, depth = fresh_args()
    levels[1] = levels[0]
    with pytest.raises(ValueError):
        c.flush(levels, zeros, dirty, depth)
    with pytest.raises(TypeError):
        c.flush(levels, zeros, dirty)  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        c.set_impl("no-such-kernel")


def test_flush_survives_python_code_run_by_a_lookup(c: ModuleType) -> None:
    levels, zeros, dirty, depth = fresh_args()

    class Evil(int):
        """Equal to the int, and empties the level list when compared (mid-flush)."""

        def __eq__(self, other: object) -> bool:
            levels.clear()
            return int(self) == other

        __hash__ = int.__hash__

    levels[0][Evil(2)] = b"\x02" * 32  # the sibling of the dirty leaf 3
    with pytest.raises(RuntimeError):
        c.flush(levels, zeros, dirty, depth)


def test_flush_of_nothing_is_a_no_op(c: ModuleType) -> None:
    levels, zeros, _, depth = fresh_args()
    before = [dict(level) for level in levels]
    c.flush(levels, zeros, set(), depth)
    c.flush(levels, zeros, {3}, 0)
    assert levels == before


# ---------------------------------------------------------------------------------------------
# reference counts and memory


def test_flush_keeps_reference_counts(c: ModuleType) -> None:
    depth = 48
    keys = [10**12 + 7 * i for i in range(40)]  # not cached small ints
    values = [random.Random(i).randbytes(32) for i in range(40)]
    levels: list[dict[int, bytes]] = [{} for _ in range(depth + 1)]
    levels[0].update(zip(keys, values, strict=True))
    zeros = zero_hashes(depth)
    dirty = set(keys)
    c.flush(levels, zeros, dirty, depth)
    counts = [sys.getrefcount(o) for o in (*keys, *values, *zeros, dirty)]
    for _ in range(200):
        c.flush(levels, zeros, dirty, depth)
    assert [sys.getrefcount(o) for o in (*keys, *values, *zeros, dirty)] == counts
    # error paths too: a bad sibling high up fails after many nodes were made
    node = 1 << 20  # the height-20 ancestor of a new dirty leaf, whose sibling is malformed
    levels[20][node ^ 1] = b"short"
    dirty.add(node << 20)
    levels[0][node << 20] = b"\x09" * 32
    counts = [sys.getrefcount(o) for o in (*keys, *values, *zeros, dirty)]
    for _ in range(200):
        with pytest.raises(ValueError):
            c.flush(levels, zeros, dirty, depth)
    assert [sys.getrefcount(o) for o in (*keys, *values, *zeros, dirty)] == counts


def test_flush_does_not_leak(c: ModuleType) -> None:
    rng = random.Random(3)
    tree = CTree(32)
    indices = [rng.randrange(1 << 32) for _ in range(50)]
    for index in indices:
        tree.set(index, rng.randbytes(32))
    tree.root  # noqa: B018

    def churn(rounds: int) -> None:
        for r in range(rounds):
            for index in indices[r % 7 :: 7]:
                tree.set(index, rng.randbytes(32))
            tree.root  # noqa: B018

    churn(200)
    tracemalloc.start()
    try:
        churn(50)
        before = tracemalloc.get_traced_memory()[0]
        churn(1000)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, grown


# ---------------------------------------------------------------------------------------------
# the whole tree suite with each flush


def load_tree_suite() -> ModuleType:
    path = Path(__file__).with_name("test_sparse_merkle.py")
    spec = importlib.util.spec_from_file_location("isoperp_tree_suite_again", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TREE_SUITE = load_tree_suite()
SUITE_TESTS = sorted(name for name in vars(TREE_SUITE) if name.startswith("test_"))


@pytest.fixture(params=["python", *(f"c-{k}" for k in KERNELS)])
def flush_impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """SparseMerkleTree._flush set to the Python reference, or to the C flush with a kernel."""
    name: str = request.param
    if name == "python":
        monkeypatch.setattr(SparseMerkleTree, "_flush", SparseMerkleTree._flush_python)
        yield name
        return
    if fm is None:
        if REQUIRE_FAST:
            pytest.fail("isoperp.tree._fastmerkle is not built and ISOPERP_REQUIRE_FAST=1")
        pytest.skip("isoperp.tree._fastmerkle is not built")
    monkeypatch.setattr(SparseMerkleTree, "_flush", CTree._flush)
    undo = use_kernel(fm, name.removeprefix("c-"))
    try:
        yield name
    finally:
        undo()


@pytest.mark.parametrize("test_name", SUITE_TESTS)
def test_tree_suite_with_each_flush(flush_impl: str, test_name: str) -> None:
    getattr(TREE_SUITE, test_name)()
