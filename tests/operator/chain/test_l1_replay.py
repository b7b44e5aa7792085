"""Replaying a posted checkpoint from its batch data alone (isoperp.chain.l1): an honest batch
replays; every way the batch data proves a checkpoint wrong is reported as InvalidCheckpoint with
the first bad record (the published trace, a record the rules reject, the header's commitments,
undecodable data); a forced request served as a no-op is no fraud."""

import dataclasses

import pytest
from eth_account import Account

from isoperp.batch.builder import BatchBuilder, trace_tree
from isoperp.chain.l1 import InvalidCheckpoint, decode_posted, replay
from isoperp.ledger.ledger import Ledger
from isoperp.ledger.markets import DEVNET_MARKETS, DEVNET_OPERATOR, DEVNET_ORACLE
from isoperp.ledger.transitions import Deposit, Withdraw, forced_request
from isoperp.protocol.batch import assemble_batch, batch_hash, encode_record
from isoperp.protocol.header import CheckpointHeader
from isoperp.protocol.signing import Domain, request_digest, sign_digest

DOMAIN = Domain(31337, "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512")
ALICE, BOB = Account.create(), Account.create()


def _withdraw(amount: int, nonce: int) -> Withdraw:
    unsigned = Withdraw(0, ALICE.address, amount, nonce, b"")
    sig = sign_digest(bytes(ALICE.key), request_digest(DOMAIN, unsigned))
    return Withdraw(0, ALICE.address, amount, nonce, sig)


def _fresh() -> Ledger:
    return Ledger.genesis(DEVNET_MARKETS, DOMAIN, DEVNET_ORACLE, fee_recipient=DEVNET_OPERATOR)


@pytest.fixture
def sealed():
    ledger = _fresh()
    b = BatchBuilder(ledger, CheckpointHeader.genesis(ledger.state_root))
    b.add(Deposit(0, 0, ALICE.address, 5_000_000, 10))
    b.add(Deposit(1, 1, BOB.address, 7_000_000, 11))
    b.add(_withdraw(1_000_000, 0))
    b.add(forced_request(0, 1, BOB.address, 0, 0, 5, 12))  # BOB does not own account 0: no-op
    b.add(_withdraw(2_000_000, 1))
    return b.seal(timestamp=20)


def _posted(header, data):
    return decode_posted(header, data, tx_hash="0x" + "00" * 32, block=1, finalizes_at=100)


def _forge(sealed, records, roots, **header_changes):
    """A checkpoint whose header commits consistently to ``records`` and ``roots``."""
    data = assemble_batch(records, roots)
    header = dataclasses.replace(
        sealed.header,
        batch_hash=batch_hash(data),
        trace_root=trace_tree(records, roots).root,
        record_count=len(records),
        batch_length=len(data),
        **header_changes,
    )
    return _posted(header, data)


def test_replay_honest_batch_succeeds(sealed):
    ledger = _fresh()
    cp = replay(ledger, _posted(sealed.header, sealed.data))
    assert ledger.state_root == sealed.header.state_root
    assert cp.withdrawals == sealed.withdrawals and len(cp.withdrawals) == 2
    assert cp.slots == (None, None, 0, None, 1)
    assert cp.roots_after == sealed.roots_after and cp.records == sealed.records


def test_replay_wrong_published_root_names_the_record(sealed):
    roots = list(sealed.roots_after)
    roots[2] = b"\x07" * 32
    with pytest.raises(InvalidCheckpoint) as info:
        replay(_fresh(), _forge(sealed, list(sealed.records), roots))
    assert (info.value.seq, info.value.record_index, info.value.reason) == (1, 2, "root_mismatch")
    assert info.value.code == "invalid_checkpoint"


def test_replay_record_the_rules_reject_names_the_record(sealed):
    # a withdrawal beyond the collateral at index 3: the batch may not carry it even as a no-op
    records = list(sealed.records)
    roots = list(sealed.roots_after)
    records.insert(3, encode_record(_withdraw(10**12, 1)))
    roots.insert(3, roots[2])
    with pytest.raises(InvalidCheckpoint) as info:
        replay(_fresh(), _forge(sealed, records, roots))
    assert (info.value.record_index, info.value.reason) == (3, "insufficient_collateral")


def test_replay_final_root_mismatch_is_invalid(sealed):
    forged = _forge(sealed, list(sealed.records), list(sealed.roots_after), state_root=b"\x01" * 32)
    with pytest.raises(InvalidCheckpoint) as info:
        replay(_fresh(), forged)
    assert (info.value.record_index, info.value.reason) == (None, "root_mismatch")


def test_replay_withdrawals_root_mismatch_is_invalid(sealed):
    forged = _forge(
        sealed, list(sealed.records), list(sealed.roots_after), withdrawals_root=b"\x01" * 32
    )
    with pytest.raises(InvalidCheckpoint) as info:
        replay(_fresh(), forged)
    assert info.value.reason == "withdrawals_mismatch"


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"batch_length": 1}, "batch_length"),
        ({"batch_hash": b"\x01" * 32}, "batch_hash"),
        ({"record_count": 4}, "record_count"),
        ({"trace_root": b"\x01" * 32}, "trace_root"),
    ],
)
def test_replay_header_commitment_mismatch_is_invalid(sealed, change, reason):
    header = dataclasses.replace(sealed.header, **change)
    ledger = _fresh()
    root = ledger.state_root
    with pytest.raises(InvalidCheckpoint) as info:
        replay(ledger, _posted(header, sealed.data))
    assert (info.value.record_index, info.value.reason) == (None, reason)
    assert ledger.state_root == root  # checked before anything is applied


def test_decode_posted_undecodable_data_is_invalid(sealed):
    with pytest.raises(InvalidCheckpoint) as info:
        _posted(sealed.header, sealed.data[:-1])
    assert (info.value.seq, info.value.reason) == (1, "bad_batch")
