"""The operator's journal of user requests (SQLite, WAL, synchronous=FULL).

Every signed request (withdrawal, margin move, order, cancel) and every oracle price is
committed here before it is acknowledged. The operator cycle takes pending entries in arrival
order and marks each one ``included`` (with the checkpoint and, for withdrawals, the slot in its
withdrawals tree), ``rejected`` (with the ledger's or the book's reason code), or, for orders,
``open`` while it rests in the book (with its filled size) and finally ``filled``,
``cancelled``, ``expired`` or ``done`` (an IOC remainder). Requests are stored as the transition
objects themselves (any frozen dataclass of ``isoperp.ledger.transitions``), so the journal
never needs to know their fields.

Every status change the operator decides on top of checkpoint ``k`` (posting ``k`` itself, or a
later idle cycle) keeps the row's previous values in the ``undo`` table under ``base_seq = k``. If
a reorg takes checkpoints ``>= k`` off the chain, ``rollback(k)`` restores those rows (newest
first), so requests included there are pending again and nothing acknowledged is lost."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from isoperp.errors import ConfigError
from isoperp.ledger import transitions

SCHEMA_VERSION = 3
MIGRATES_FROM = (2,)  # version 3 only added the undo table
SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT    NOT NULL,
    account_id  INTEGER,
    nonce       INTEGER,
    payload     TEXT    NOT NULL,
    status      TEXT    NOT NULL DEFAULT 'pending',
    reason      TEXT,
    seq         INTEGER,
    slot        INTEGER,
    filled      INTEGER NOT NULL DEFAULT 0,
    created_at  REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_status ON requests (status, id);
CREATE INDEX IF NOT EXISTS requests_account ON requests (account_id, nonce);
CREATE UNIQUE INDEX IF NOT EXISTS requests_live_nonce
    ON requests (kind, account_id, nonce) WHERE status IN ('pending', 'open');
CREATE TABLE IF NOT EXISTS undo (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    base_seq    INTEGER NOT NULL,
    request_id  INTEGER NOT NULL,
    status      TEXT    NOT NULL,
    reason      TEXT,
    seq         INTEGER,
    slot        INTEGER,
    filled      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS undo_base ON undo (base_seq, id);
"""
MAX_JOURNAL_NONCE = (1 << 63) - 1  # SQLite INTEGER is signed 64-bit
STATUSES = ("pending", "open", "included", "rejected", "filled", "cancelled", "expired", "done")


@cache
def _kinds() -> dict[str, type[Any]]:
    return {
        name: cls
        for name, cls in vars(transitions).items()
        if isinstance(cls, type) and dataclasses.is_dataclass(cls)
    }


def _encode(request: Any) -> str:
    body: dict[str, Any] = {}
    for f in dataclasses.fields(request):
        value = getattr(request, f.name)
        if isinstance(value, bytes):
            body[f.name] = {"hex": value.hex()}
        elif isinstance(value, bool) or not isinstance(value, int):
            body[f.name] = value
        else:
            body[f.name] = {"int": str(value)}  # JSON numbers lose precision beyond 2^53
    return json.dumps(body, separators=(",", ":"))


def _decode(kind: str, payload: str) -> Any:
    cls = _kinds().get(kind)
    if cls is None:
        raise ConfigError(f"the journal holds an unknown request kind {kind!r}", code="journal")
    args: dict[str, Any] = {}
    for name, value in json.loads(payload).items():
        if isinstance(value, dict) and "hex" in value:
            args[name] = bytes.fromhex(value["hex"])
        elif isinstance(value, dict) and "int" in value:
            args[name] = int(value["int"])
        else:
            args[name] = value
    return cls(**args)


@dataclass(frozen=True, slots=True)
class InboxEntry:
    id: int
    request: Any
    status: str
    reason: str | None
    seq: int | None
    slot: int | None
    filled: int = 0

    @property
    def kind(self) -> str:
        return type(self.request).__name__


class Inbox:
    """Durable, ordered journal of requests."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(path, timeout=10, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            has_table = self._db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'requests'"
            ).fetchone()
            known = version == SCHEMA_VERSION or version in MIGRATES_FROM
            if not known and (version != 0 or has_table):
                raise ConfigError(
                    f"the journal at {path} has schema {version}; this isoperp writes "
                    f"{SCHEMA_VERSION}: move it aside to start a new one",
                    code="journal",
                )
            self._db.executescript(SCHEMA)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the journal at {path}: {exc}", code="journal") from exc

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

    def submit(self, request: Any) -> int:
        """Stores ``request`` durably; returns its id. A live twin (same kind, account and nonce,
        pending or resting) is refused with code ``replay``."""
        kind = type(request).__name__
        if kind not in _kinds():
            raise ConfigError(f"not a journal request: {kind}", code="journal")
        account_id = getattr(request, "account_id", None)
        nonce = getattr(request, "nonce", None)
        if nonce is not None and not 0 <= nonce <= MAX_JOURNAL_NONCE:
            raise ConfigError(
                f"nonce {nonce} is beyond what the journal stores (2^63 - 1)", code="bad_nonce"
            )
        try:
            with self._tx() as db:
                cur = db.execute(
                    "INSERT INTO requests (kind, account_id, nonce, payload, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (kind, account_id, nonce, _encode(request), time.time()),
                )
        except sqlite3.IntegrityError as exc:
            raise ConfigError(
                f"account {account_id} already has a live {kind} with nonce {nonce}",
                code="replay",
            ) from exc
        return int(cur.lastrowid or 0)

    def _select(self, where: str, args: tuple[Any, ...] = ()) -> list[InboxEntry]:
        rows = self._db.execute(
            "SELECT id, kind, payload, status, reason, seq, slot, filled FROM requests "
            f"WHERE {where} ORDER BY id",
            args,
        ).fetchall()
        return [
            InboxEntry(rid, _decode(kind, payload), status, reason, seq, slot, filled)
            for rid, kind, payload, status, reason, seq, slot, filled in rows
        ]

    def of_account_where(
        self, account_id: int, where: str, args: tuple[Any, ...] = ()
    ) -> list[InboxEntry]:
        """Entries of ``account_id`` that also match ``where`` (an SQL condition over the columns
        id, kind, account_id, nonce, status, reason, seq, slot, filled; values bound through
        ``args``), in journal order. Served by the (account_id, nonce) index. Trusted callers
        only: ``where`` is SQL."""
        return self._select(f"account_id = ? AND ({where})", (account_id, *args))

    def pending(self) -> list[InboxEntry]:
        return self._select("status = 'pending'")

    def open_orders(self) -> list[InboxEntry]:
        """Orders resting in the book, in arrival order (their time priority)."""
        return self._select("status = 'open'")

    def all(self) -> list[InboxEntry]:
        return self._select("1 = 1")

    def of_account(self, account_id: int) -> list[InboxEntry]:
        return self._select("account_id = ?", (account_id,))

    def pending_count(self, account_id: int, kind: str | None = None) -> int:
        sql = "SELECT COUNT(*) FROM requests WHERE status = 'pending' AND account_id = ?"
        args: tuple[Any, ...] = (account_id,)
        if kind is not None:
            sql += " AND kind = ?"
            args += (kind,)
        return int(self._db.execute(sql, args).fetchone()[0])

    def next_request_nonce(self, account_id: int, ledger_nonce: int) -> int:
        """The nonce for the account's next withdrawal or margin move: above the ledger's (what L1
        has) and above every pending one. Pending entries below the ledger's nonce are already on
        L1 (a crash before the journal update; the next sync marks them), so they do not count."""
        row = self._db.execute(
            "SELECT MAX(nonce) FROM requests WHERE account_id = ? AND status = 'pending' "
            "AND kind IN ('Withdraw', 'MarginTransfer')",
            (account_id,),
        ).fetchone()
        return max(ledger_nonce, 0 if row[0] is None else int(row[0]) + 1)

    def mark_rejected(self, request_id: int, reason: str) -> None:
        self.update([(request_id, "rejected", reason, None, None, None)])

    def mark_included(self, included: list[tuple[int, int, int | None]]) -> None:
        """(request id, checkpoint seq, withdrawal slot or None) for every included request."""
        self.update([(rid, "included", None, seq, slot, None) for rid, seq, slot in included])

    def update(
        self,
        changes: list[tuple[int, str, str | None, int | None, int | None, int | None]],
        *,
        base_seq: int = 0,
    ) -> None:
        """Atomically applies (id, status, reason, seq, slot, filled) changes; ``None`` keeps the
        stored seq, slot and filled. ``base_seq``: the newest checkpoint the changes were decided
        on; unless 0 (genesis, which no reorg removes) the previous values are kept for
        ``rollback``."""
        for _, status, *_ in changes:
            if status not in STATUSES:
                raise ValueError(f"unknown status {status!r}")
        with self._tx() as db:
            if base_seq and changes:
                db.executemany(
                    "INSERT INTO undo (base_seq, request_id, status, reason, seq, slot, filled) "
                    "SELECT ?, id, status, reason, seq, slot, filled FROM requests WHERE id = ?",
                    [(base_seq, change[0]) for change in changes],
                )
            db.executemany(
                "UPDATE requests SET status = ?, reason = ?, seq = COALESCE(?, seq), "
                "slot = COALESCE(?, slot), filled = COALESCE(?, filled) WHERE id = ?",
                [(st, why, seq, slot, filled, rid) for rid, st, why, seq, slot, filled in changes],
            )

    def rollback(self, from_seq: int) -> int:
        """Undoes, newest first, every change decided on checkpoint ``from_seq`` or later (a reorg
        took them off the chain); returns the number of rows restored. A live twin that arrived
        since (same kind, account and nonce) yields to the restored request and is rejected as a
        replay."""
        with self._tx() as db:
            rows = db.execute(
                "SELECT id, request_id, status, reason, seq, slot, filled FROM undo "
                "WHERE base_seq >= ? ORDER BY id DESC",
                (from_seq,),
            ).fetchall()
            for _, rid, status, reason, seq, slot, filled in rows:
                if status in ("pending", "open"):
                    db.execute(
                        "UPDATE requests SET status = 'rejected', reason = 'replay' WHERE id IN ("
                        "SELECT b.id FROM requests a JOIN requests b ON b.kind = a.kind "
                        "AND b.account_id = a.account_id AND b.nonce = a.nonce "
                        "WHERE a.id = ? AND b.id != a.id AND b.status IN ('pending', 'open'))",
                        (rid,),
                    )
                db.execute(
                    "UPDATE requests SET status = ?, reason = ?, seq = ?, slot = ?, filled = ? "
                    "WHERE id = ?",
                    (status, reason, seq, slot, filled, rid),
                )
            db.execute("DELETE FROM undo WHERE base_seq >= ?", (from_seq,))
        return len(rows)

    def forget_undo(self, below_seq: int) -> None:
        """Drops the undo records of checkpoints below ``below_seq`` (too deep to be reorged)."""
        with self._tx() as db:
            db.execute("DELETE FROM undo WHERE base_seq < ?", (below_seq,))
