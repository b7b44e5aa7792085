"""The operator's request inbox: signed user requests waiting for the next batch (SQLite, WAL).

A request is acknowledged only once it is committed here; the operator marks it included (with the
checkpoint and withdrawal index) or rejected (with the ledger's reason code). The API issue puts an
HTTP front on the same inbox.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from isoperp.errors import ConfigError
from isoperp.ledger.transitions import MarginTransfer, Withdraw

Request = Withdraw | MarginTransfer

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT    NOT NULL CHECK (kind IN ('withdraw', 'margin')),
    account_id  INTEGER NOT NULL,
    nonce       INTEGER NOT NULL,
    payload     TEXT    NOT NULL,
    status      TEXT    NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'included', 'rejected')),
    reason      TEXT,
    seq         INTEGER,
    slot        INTEGER,
    created_at  REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_status ON requests (status, id);
CREATE UNIQUE INDEX IF NOT EXISTS requests_pending_nonce
    ON requests (account_id, nonce) WHERE status = 'pending';
"""


@dataclass(frozen=True, slots=True)
class InboxEntry:
    id: int
    request: Request
    status: str
    reason: str | None
    seq: int | None
    slot: int | None


def _encode(request: Request) -> tuple[str, str]:
    body = {
        "account_id": request.account_id,
        "amount": str(request.amount),
        "nonce": request.nonce,
        "signature": "0x" + request.signature.hex(),
    }
    if isinstance(request, Withdraw):
        body["recipient"] = request.recipient
        return "withdraw", json.dumps(body)
    body["market_id"] = request.market_id
    return "margin", json.dumps(body)


def _decode(kind: str, payload: str) -> Request:
    b = json.loads(payload)
    sig = bytes.fromhex(b["signature"][2:])
    if kind == "withdraw":
        return Withdraw(b["account_id"], b["recipient"], int(b["amount"]), b["nonce"], sig)
    return MarginTransfer(b["account_id"], b["market_id"], int(b["amount"]), b["nonce"], sig)


class Inbox:
    """Durable queue of signed requests."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(path, timeout=10, isolation_level=None)
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the inbox at {path}: {exc}") from exc
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def submit(self, request: Request) -> int:
        """Stores ``request`` durably; returns its id (ConfigError if its nonce is pending)."""
        kind, payload = _encode(request)
        try:
            with self._tx() as db:
                cur = db.execute(
                    "INSERT INTO requests (kind, account_id, nonce, payload, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (kind, request.account_id, request.nonce, payload, time.time()),
                )
        except sqlite3.IntegrityError as exc:
            raise ConfigError(
                f"account {request.account_id} already has a request with nonce {request.nonce}",
                code="replay",
            ) from exc
        return int(cur.lastrowid or 0)

    def pending(self) -> list[InboxEntry]:
        rows = self._db.execute(
            "SELECT id, kind, payload, status, reason, seq, slot FROM requests "
            "WHERE status = 'pending' ORDER BY id"
        ).fetchall()
        return [self._entry(r) for r in rows]

    def all(self) -> list[InboxEntry]:
        rows = self._db.execute(
            "SELECT id, kind, payload, status, reason, seq, slot FROM requests ORDER BY id"
        ).fetchall()
        return [self._entry(r) for r in rows]

    def pending_count(self, account_id: int) -> int:
        row = self._db.execute(
            "SELECT COUNT(*) FROM requests WHERE status = 'pending' AND account_id = ?",
            (account_id,),
        ).fetchone()
        return int(row[0])

    @staticmethod
    def _entry(row: tuple[int, str, str, str, str | None, int | None, int | None]) -> InboxEntry:
        rid, kind, payload, status, reason, seq, slot = row
        return InboxEntry(rid, _decode(kind, payload), status, reason, seq, slot)

    def mark_rejected(self, request_id: int, reason: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE requests SET status = 'rejected', reason = ? WHERE id = ?",
                (reason, request_id),
            )

    def mark_included(self, included: list[tuple[int, int, int | None]]) -> None:
        """(request id, checkpoint seq, withdrawal slot or None) for every included request."""
        with self._tx() as db:
            db.executemany(
                "UPDATE requests SET status = 'included', seq = ?, slot = ? WHERE id = ?",
                [(seq, slot, rid) for rid, seq, slot in included],
            )
