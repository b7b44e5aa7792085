"""ChainWatcher against a scripted chain: incremental bounded scans, reorgs found by block hash
(shallow, deep, during a scan), logs marked ``removed``, and gaps refused."""

from dataclasses import dataclass, field

import pytest
from eth_abi import encode
from eth_utils import event_abi_to_log_topic, keccak
from hypothesis import given, settings
from hypothesis import strategies as st
from web3 import Web3

from isoperp.chain.artifacts import artifact
from isoperp.chain.watcher import ChainWatcher
from isoperp.errors import ProtocolError

VAULT = "0x" + "11" * 20
SETTLEMENT = "0x" + "22" * 20
HATCH = "0x" + "44" * 20
OWNER = "0x" + "33" * 20
DEPLOY_BLOCK = 5


def _contracts():
    w3 = Web3()
    vault = w3.eth.contract(
        address=Web3.to_checksum_address(VAULT), abi=artifact("CollateralVault").abi
    )
    settlement = w3.eth.contract(
        address=Web3.to_checksum_address(SETTLEMENT), abi=artifact("Settlement").abi
    )
    hatch = w3.eth.contract(
        address=Web3.to_checksum_address(HATCH), abi=artifact("EscapeHatch").abi
    )
    return vault, settlement, hatch


VAULT_C, SETTLEMENT_C, HATCH_C = _contracts()


def _topic(contract, name):
    return event_abi_to_log_topic(contract.events[name]().abi)


def _word(value):
    return (
        value.to_bytes(32, "big")
        if isinstance(value, int)
        else bytes(12) + bytes.fromhex(value[2:])
    )


def deposit_log(index, amount=100):
    return {
        "address": Web3.to_checksum_address(VAULT),
        "topics": [_topic(VAULT_C, "Deposited"), _word(index), _word(OWNER), _word(OWNER)],
        "data": encode(
            ["uint128", "uint64", "bytes32"], [amount, 1_700_000_000, keccak(b"%d" % index)]
        ),
    }


def checkpoint_log(seq):
    return {
        "address": Web3.to_checksum_address(SETTLEMENT),
        "topics": [_topic(SETTLEMENT_C, "CheckpointPosted"), _word(seq), keccak(b"cp%d" % seq)],
        "data": encode(
            ["bytes32", "bytes32", "uint64", "uint64"], [bytes(32), bytes(32), 0, 1_700_000_600]
        ),
    }


def forced_log(index):
    return {
        "address": Web3.to_checksum_address(HATCH),
        "topics": [_topic(HATCH_C, "ForcedRequested"), _word(index), _word(OWNER), _word(1)],
        "data": encode(
            ["uint8", "uint16", "uint128", "uint64", "bytes32"], [1, 0, 5, 1_700_000_000, bytes(32)]
        ),
    }


@dataclass
class FakeChain:
    """Blocks as lists of raw logs; ``fork(n)`` replaces every block above n (new hashes)."""

    blocks: list[list[dict]] = field(default_factory=lambda: [[] for _ in range(DEPLOY_BLOCK + 1)])
    salts: list[int] = field(default_factory=list)
    epoch: int = 0
    calls: list[tuple[int, int]] = field(default_factory=list)
    removed: list[dict] = field(default_factory=list)  # extra logs, reported with removed=True
    on_get_logs: object = None

    def __post_init__(self):
        self.salts = [0] * len(self.blocks)

    def mine(self, *logs):
        self.blocks.append(list(logs))
        self.salts.append(self.epoch)
        return len(self.blocks) - 1

    def fork(self, keep_through):
        self.epoch += 1
        del self.blocks[keep_through + 1 :]
        del self.salts[keep_through + 1 :]

    def hash_of(self, n):
        return keccak(b"%d/%d" % (n, self.salts[n]))

    # -- the w3.eth surface the watcher uses --

    def get_block(self, ident):
        n = len(self.blocks) - 1 if ident == "latest" else ident
        if n >= len(self.blocks):
            from web3.exceptions import BlockNotFound

            raise BlockNotFound(n)
        return {"number": n, "hash": self.hash_of(n)}

    def get_logs(self, flt):
        lo, hi = flt["fromBlock"], flt["toBlock"]
        self.calls.append((lo, hi))
        if self.on_get_logs:
            hook, self.on_get_logs = self.on_get_logs, None
            hook()
        out = []
        for n in range(lo, min(hi, len(self.blocks) - 1) + 1):
            for i, raw in enumerate(self.blocks[n]):
                out.append(self._full(raw, n, i, removed=False))
        for raw, n, i in [(r["raw"], r["block"], r["index"]) for r in self.removed]:
            if lo <= n <= hi:
                out.append(self._full(raw, n, i, removed=True))
        return out

    def _full(self, raw, n, i, *, removed):
        return {
            **raw,
            "blockNumber": n,
            "blockHash": self.hash_of(n) if n < len(self.salts) else keccak(b"gone%d" % n),
            "transactionHash": keccak(
                b"tx%d/%d/%d" % (n, i, self.salts[n] if n < len(self.salts) else 99)
            ),
            "transactionIndex": i,
            "logIndex": i,
            "removed": removed,
        }


class FakeW3:
    def __init__(self, chain):
        self.eth = chain


def watcher(chain, **kw):
    return ChainWatcher(FakeW3(chain), VAULT_C, SETTLEMENT_C, HATCH_C, DEPLOY_BLOCK, **kw)


def test_scans_incrementally_in_bounded_ranges():
    chain = FakeChain()
    for i in range(5):
        chain.mine(deposit_log(i))
    chain.mine(checkpoint_log(1), forced_log(0))
    w = watcher(chain, log_range=2)
    update = w.poll()
    assert [d.index for d in update.deposits] == [0, 1, 2, 3, 4]
    assert [c.seq for c in update.checkpoints] == [1] and [f.index for f in update.forced] == [0]
    assert chain.calls == [(5, 6), (7, 8), (9, 10), (11, 11)]
    assert all(hi - lo < 2 for lo, hi in chain.calls)
    chain.calls.clear()
    chain.mine(deposit_log(5))
    update = w.poll()
    assert [d.index for d in update.deposits] == [5] and chain.calls == [(12, 12)]
    assert w.poll().empty and chain.calls == [(12, 12)]  # nothing new: no log query at all


def test_shallow_reorg_drops_events_above_the_fork_and_adopts_the_new_branch():
    chain = FakeChain()
    chain.mine(deposit_log(0))
    fork = chain.mine(checkpoint_log(1))
    chain.mine(deposit_log(1))
    chain.mine(checkpoint_log(2))
    w = watcher(chain)
    w.poll()
    chain.fork(fork)
    chain.mine()
    chain.mine(deposit_log(1, amount=7))
    update = w.poll()
    assert update.reorg is not None and update.reorg.fork_block == fork
    assert update.reorg.checkpoint_seqs == (2,)
    assert [d.index for d in update.reorg.deposits] == [1]
    assert [(d.index, d.amount) for d in w.deposits] == [(0, 100), (1, 7)]
    assert [c.seq for c in w.checkpoints] == [1]


def test_reorg_deeper_than_the_remembered_hashes_rescans_from_the_deployment():
    chain = FakeChain()
    for i in range(6):
        chain.mine(deposit_log(i))
    w = watcher(chain, history=2)
    w.poll()
    chain.fork(DEPLOY_BLOCK + 1)
    chain.mine(deposit_log(1, amount=9))
    update = w.poll()
    assert update.reorg is not None and update.reorg.fork_block == DEPLOY_BLOCK - 1
    assert len(update.reorg.deposits) == 6  # everything dropped, then re-read
    assert [(d.index, d.amount) for d in w.deposits] == [(0, 100), (1, 9)]


def test_shorter_chain_after_a_rollback_is_a_reorg():
    chain = FakeChain()
    chain.mine(deposit_log(0))
    fork = chain.mine(deposit_log(1))
    chain.mine(deposit_log(2))
    w = watcher(chain)
    w.poll()
    chain.fork(fork)  # the chain now ends below the watcher's cursor
    update = w.poll()
    assert update.reorg is not None and [d.index for d in update.reorg.deposits] == [2]
    assert [d.index for d in w.deposits] == [0, 1]


def test_reorg_during_a_scan_adopts_nothing_and_the_next_poll_recovers():
    chain = FakeChain()
    chain.mine(deposit_log(0))
    chain.mine(deposit_log(1))
    w = watcher(chain, log_range=1)

    def reorganise():
        chain.fork(DEPLOY_BLOCK + 1)
        chain.mine(deposit_log(1, amount=3))

    chain.on_get_logs = reorganise
    assert w.poll().deposits == [] and w.deposits == []
    w.poll()
    assert [(d.index, d.amount) for d in w.deposits] == [(0, 100), (1, 3)]


def test_removed_log_retracts_its_event():
    chain = FakeChain()
    chain.mine(deposit_log(0))
    n = chain.mine()
    chain.removed.append({"raw": deposit_log(1), "block": n, "index": 0})
    w = watcher(chain)
    # the removed log names an event this scan never adopted: nothing to retract, nothing adopted
    assert [d.index for d in w.poll().deposits] == [0]
    chain.removed.append({"raw": deposit_log(0), "block": DEPLOY_BLOCK + 1, "index": 0})
    chain.mine()
    w.cursor = DEPLOY_BLOCK  # a provider re-reporting an adopted block's log as removed
    update = w.poll()
    assert update.reorg is not None and [d.index for d in update.reorg.deposits] == [0]


def test_gap_in_a_queue_is_refused():
    chain = FakeChain()
    chain.mine(deposit_log(0))
    chain.mine(deposit_log(2))
    with pytest.raises(ProtocolError) as info:
        watcher(chain).poll()
    assert info.value.code == "gap"


def invalidation_log(from_seq, previous_latest):
    return {
        "address": Web3.to_checksum_address(SETTLEMENT),
        "topics": [_topic(SETTLEMENT_C, "CheckpointsInvalidated"), _word(from_seq)],
        "data": encode(["uint64"], [previous_latest]),
    }


def test_invalidation_is_reported_and_logged_as_an_error(caplog):
    """The watcher reports a CheckpointsInvalidated event (error log), keeps its checkpoint list
    (the operator does not act on invalidations yet) and keeps following the chain."""
    chain = FakeChain()
    chain.mine(checkpoint_log(1))
    chain.mine(checkpoint_log(2))
    w = watcher(chain)
    w.poll()
    n = chain.mine(invalidation_log(2, 2))
    with caplog.at_level("ERROR", logger="isoperp.chain.watcher"):
        update = w.poll()
    assert [(i.from_seq, i.previous_latest, i.block) for i in update.invalidations] == [(2, 2, n)]
    assert not update.empty
    assert "INVALIDATED" in caplog.text and "#2..#2" in caplog.text
    assert [c.seq for c in w.checkpoints] == [1, 2]
    chain.mine(deposit_log(0))
    update = w.poll()
    assert [d.index for d in update.deposits] == [0] and update.invalidations == []
    assert len(w.invalidations) == 1


def test_invalidation_in_a_reorganised_block_is_dropped():
    chain = FakeChain()
    fork = chain.mine(checkpoint_log(1))
    chain.mine(invalidation_log(1, 1))
    w = watcher(chain)
    assert len(w.poll().invalidations) == 1
    chain.fork(fork)
    chain.mine()
    update = w.poll()
    assert update.reorg is not None and len(update.reorg.invalidations) == 1
    assert w.invalidations == [] and [c.seq for c in w.checkpoints] == [1]


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError):
        watcher(FakeChain(), log_range=0)


@settings(max_examples=60, deadline=None)
@given(
    script=st.lists(
        st.tuples(
            st.sampled_from(["deposit", "checkpoint", "empty", "fork", "poll"]), st.integers(1, 4)
        ),
        max_size=40,
    ),
    log_range=st.integers(1, 5),
    history=st.integers(1, 8),
)
def test_watcher_always_matches_a_fresh_scan(script, log_range, history):
    """Whatever the sequence of blocks, reorgs and polls, the watcher ends with exactly what a
    fresh scan of the final chain finds."""
    chain = FakeChain()
    w = watcher(chain, log_range=log_range, history=history)
    deposits = checkpoints = 0

    def count(kind):
        return sum(1 for b in chain.blocks for log in b if log["topics"][0] == _topic(*kind))

    for action, arg in script:
        if action == "deposit":
            chain.mine(deposit_log(deposits))
        elif action == "checkpoint":
            chain.mine(checkpoint_log(checkpoints + 1))
        elif action == "empty":
            chain.mine()
        elif action == "fork":
            chain.fork(max(DEPLOY_BLOCK, len(chain.blocks) - 1 - arg))
        else:
            w.poll()
        deposits = count((VAULT_C, "Deposited"))
        checkpoints = count((SETTLEMENT_C, "CheckpointPosted"))
    w.poll()
    fresh = watcher(chain)
    fresh.poll()
    assert [d.log_id for d in w.deposits] == [d.log_id for d in fresh.deposits]
    assert [c.log_id for c in w.checkpoints] == [c.log_id for c in fresh.checkpoints]
    assert [(d.block, d.block_hash) for d in w.deposits] == [
        (d.block, d.block_hash) for d in fresh.deposits
    ]
