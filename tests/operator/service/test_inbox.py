"""The request inbox: durable, ordered, one pending request per (account, nonce)."""

import pytest

from isoperp.errors import ConfigError
from isoperp.ledger.transitions import MarginTransfer, Withdraw
from isoperp.service.inbox import Inbox

ADDR = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
SIG = bytes(range(65))


@pytest.fixture
def inbox(tmp_path):
    box = Inbox(tmp_path / "inbox.sqlite")
    yield box
    box.close()


def test_submit_round_trips_in_order(inbox):
    w = Withdraw(3, ADDR, (1 << 128) - 1, 0, SIG)
    m = MarginTransfer(3, 1, -(1 << 127), 1, SIG)
    ids = [inbox.submit(w), inbox.submit(m)]
    assert [e.id for e in inbox.pending()] == ids
    assert [e.request for e in inbox.pending()] == [w, m]
    assert inbox.pending_count(3) == 2 and inbox.pending_count(4) == 0


def test_duplicate_pending_nonce_rejected(inbox):
    inbox.submit(Withdraw(3, ADDR, 1, 0, SIG))
    with pytest.raises(ConfigError) as info:
        inbox.submit(Withdraw(3, ADDR, 2, 0, SIG))
    assert info.value.code == "replay"
    assert len(inbox.all()) == 1


def test_rejected_nonce_can_be_reused(inbox):
    rid = inbox.submit(Withdraw(3, ADDR, 1, 0, SIG))
    inbox.mark_rejected(rid, "insufficient_collateral")
    inbox.submit(Withdraw(3, ADDR, 1, 0, SIG))
    statuses = [(e.status, e.reason) for e in inbox.all()]
    assert statuses == [("rejected", "insufficient_collateral"), ("pending", None)]


def test_marks_survive_reopening(tmp_path):
    path = tmp_path / "inbox.sqlite"
    box = Inbox(path)
    a = box.submit(Withdraw(1, ADDR, 5, 0, SIG))
    b = box.submit(Withdraw(2, ADDR, 6, 0, SIG))
    box.mark_included([(a, 7, 0), (b, 7, 1)])
    box.close()
    reopened = Inbox(path)
    assert [(e.status, e.seq, e.slot) for e in reopened.all()] == [
        ("included", 7, 0),
        ("included", 7, 1),
    ]
    assert reopened.pending() == []
    reopened.close()


def test_nonce_beyond_sqlite_integer_rejected(inbox):
    with pytest.raises(ConfigError) as info:
        inbox.submit(Withdraw(3, ADDR, 1, 1 << 63, SIG))
    assert info.value.code == "bad_nonce"
    assert inbox.all() == []


def test_of_account_where_filters_by_account_and_condition(inbox):
    inbox.submit(Withdraw(3, ADDR, 1, 0, SIG))
    inbox.submit(Withdraw(3, ADDR, 2, 1, SIG))
    inbox.submit(Withdraw(4, ADDR, 3, 0, SIG))
    hits = inbox.of_account_where(3, "nonce >= ?", (1,))
    assert [e.request.amount for e in hits] == [2]


def _row(inbox, rid):
    (entry,) = [e for e in inbox.all() if e.id == rid]
    return entry.status, entry.reason, entry.seq, entry.slot, entry.filled


def test_rollback_undoes_changes_decided_on_dropped_checkpoints_newest_first(inbox):
    a = inbox.submit(Withdraw(3, ADDR, 1, 0, SIG))
    b = inbox.submit(Withdraw(3, ADDR, 1, 1, SIG))
    inbox.update([(a, "included", None, 4, 0, None)], base_seq=4)
    inbox.update([(b, "included", None, 5, 0, None)], base_seq=5)
    inbox.update([(b, "rejected", "x", None, None, None)], base_seq=5)  # a later cycle on #5
    assert inbox.rollback(5) == 2
    assert _row(inbox, b) == ("pending", None, None, None, 0)
    assert _row(inbox, a) == ("included", None, 4, 0, 0)  # decided on #4, which stayed
    assert inbox.rollback(4) == 1
    assert [e.id for e in inbox.pending()] == [a, b]
    assert inbox.rollback(4) == 0  # nothing left to undo


def test_changes_on_genesis_are_not_undoable(inbox):
    a = inbox.submit(Withdraw(3, ADDR, 1, 0, SIG))
    inbox.update([(a, "rejected", "bad_signature", None, None, None)])
    assert inbox.rollback(1) == 0
    assert _row(inbox, a)[0] == "rejected"


def test_rollback_rejects_a_live_twin_that_arrived_since(inbox):
    a = inbox.submit(Withdraw(3, ADDR, 1, 0, SIG))
    inbox.update([(a, "included", None, 2, 0, None)], base_seq=2)
    twin = inbox.submit(Withdraw(3, ADDR, 9, 0, SIG))  # same nonce, no longer blocked by a live row
    inbox.rollback(2)
    assert _row(inbox, a)[0] == "pending"
    assert _row(inbox, twin)[:2] == ("rejected", "replay")


def test_forget_undo_keeps_only_recent_checkpoints(inbox):
    a = inbox.submit(Withdraw(3, ADDR, 1, 0, SIG))
    inbox.update([(a, "included", None, 2, 0, None)], base_seq=2)
    inbox.forget_undo(3)
    assert inbox.rollback(2) == 0 and _row(inbox, a)[0] == "included"


def test_journal_of_schema_2_is_migrated(tmp_path):
    import sqlite3

    path = tmp_path / "inbox.sqlite"
    Inbox(path).close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE undo")
    db.execute("PRAGMA user_version = 2")
    db.commit()
    db.close()
    box = Inbox(path)
    a = box.submit(Withdraw(3, ADDR, 1, 0, SIG))
    box.update([(a, "included", None, 2, 0, None)], base_seq=2)
    assert box.rollback(2) == 1
    box.close()


def test_next_request_nonce_skips_pending_entries_already_on_l1(inbox):
    assert inbox.next_request_nonce(3, 0) == 0
    inbox.submit(Withdraw(3, ADDR, 1, 0, SIG))
    inbox.submit(MarginTransfer(3, 1, 5, 1, SIG))
    inbox.submit(Withdraw(4, ADDR, 1, 7, SIG))  # another account
    assert inbox.next_request_nonce(3, 0) == 2
    # Both reached L1 before a crash kept the journal from saying so: the ledger's nonce is 2.
    assert inbox.next_request_nonce(3, 2) == 2
    assert inbox.next_request_nonce(3, 5) == 5
