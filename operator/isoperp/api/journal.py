"""The journal queries the API's checks need, for one account, each answered by SQL over the
rows that matter (never by decoding an account's whole history, which grows without bound).

Each goes through ``Inbox.of_account_where``, served by the journal's (account_id, nonce) index.
"""

from __future__ import annotations

from isoperp.service.inbox import Inbox, InboxEntry

_SIGNED_REQUEST_KINDS = "('Withdraw', 'MarginTransfer')"
_ORDER_KINDS = "('PlaceOrder', 'CancelOrder')"


class AccountJournal:
    """Read-only views of one account's journal entries (journal thread only)."""

    def __init__(self, inbox: Inbox, account_id: int) -> None:
        self.inbox = inbox
        self.account_id = account_id

    def _select(self, where: str, args: tuple[object, ...] = ()) -> list[InboxEntry]:
        return self.inbox.of_account_where(self.account_id, where, args)

    def with_nonce(self, nonce: int) -> list[InboxEntry]:
        """Entries of any kind and status that carry ``nonce``."""
        return self._select("nonce = ?", (nonce,))

    def live_orders(self) -> list[InboxEntry]:
        """Orders pending or resting in the book."""
        return self._select("kind = 'PlaceOrder' AND status IN ('pending', 'open')")

    def in_flight(self, account_nonce: int) -> list[InboxEntry]:
        """Withdrawals and margin moves the checkpointed account (nonce ``account_nonce``) does
        not reflect yet: pending, or included in a checkpoint newer than the snapshot (nonce not
        consumed there), in journal order."""
        return self._select(
            f"kind IN {_SIGNED_REQUEST_KINDS} AND "
            "(status = 'pending' OR (status = 'included' AND nonce >= ?))",
            (account_nonce,),
        )

    def max_order_nonce(self) -> int | None:
        """The largest nonce of any order or cancel the account ever sent (any status)."""
        top = self._select(
            "id = (SELECT id FROM requests WHERE account_id = ? AND kind IN "
            f"{_ORDER_KINDS} ORDER BY nonce DESC LIMIT 1)",
            (self.account_id,),
        )
        return top[0].request.nonce if top else None

    def recent(
        self, *, kind: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[InboxEntry]:
        """The newest ``limit`` entries (optionally of one kind / status), oldest first."""
        where = "account_id = ?"
        args: list[object] = [self.account_id]
        if kind is not None:
            where += " AND kind = ?"
            args.append(kind)
        if status is not None:
            where += " AND status = ?"
            args.append(status)
        return self._select(
            f"id IN (SELECT id FROM requests WHERE {where} ORDER BY id DESC LIMIT ?)",
            (*args, limit),
        )

    def pending_count(self) -> int:
        return self.inbox.pending_count(self.account_id)
