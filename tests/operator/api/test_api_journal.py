"""AccountJournal: the per-account journal queries behind the API's checks."""

import pytest
from api_fixtures import ALICE, BOB, USDC, Exchange

from isoperp.api.journal import AccountJournal
from isoperp.service.inbox import Inbox


@pytest.fixture
def journal(tmp_path):
    inbox = Inbox(tmp_path / "journal.sqlite")
    yield inbox
    inbox.close()


def test_account_journal_queries(tmp_path, journal):
    ex = Exchange(tmp_path)
    ids = {}
    for nonce in range(1, 200):  # history: filled orders
        ids[nonce] = journal.submit(ex.order(ALICE, nonce=nonce, size=1))
    journal.update([(rid, "filled", None, 1, None, 1) for rid in ids.values()])
    live = journal.submit(ex.order(ALICE, nonce=300, size=1))
    rejected = journal.submit(ex.order(ALICE, nonce=301, size=1))
    journal.mark_rejected(rejected, "insufficient_margin")
    journal.submit(ex.cancel(ALICE, 400))
    journal.submit(ex.order(BOB, nonce=999, size=1))
    withdrawal = journal.submit(ex.withdrawal(ALICE, USDC, nonce=2))
    included = journal.submit(ex.margin(ALICE, USDC, nonce=1))
    journal.mark_included([(included, 3, None)])
    old = journal.submit(ex.margin(ALICE, USDC, nonce=0))
    journal.mark_included([(old, 2, None)])

    alice = AccountJournal(journal, ALICE)
    assert [e.id for e in alice.with_nonce(7)] == [ids[7]]
    assert [e.id for e in alice.with_nonce(301)] == [rejected]
    assert [e.id for e in alice.live_orders()] == [live]
    assert [e.id for e in alice.in_flight(account_nonce=1)] == [withdrawal, included]
    assert [e.id for e in alice.in_flight(account_nonce=2)] == [withdrawal]
    assert alice.max_order_nonce() == 400
    assert AccountJournal(journal, 5).max_order_nonce() is None
    assert alice.pending_count() == 3
    assert [e.request.nonce for e in alice.recent(limit=2)] == [1, 0]
    assert [e.id for e in alice.recent(kind="PlaceOrder", status="open")] == []
    assert [e.id for e in alice.recent(kind="PlaceOrder", status="pending")] == [live]
    assert len(alice.recent(limit=1000)) == 199 + 6
