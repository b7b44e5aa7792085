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
