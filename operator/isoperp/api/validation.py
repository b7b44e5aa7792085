"""The semantic checks of a signed submission, run before it is journaled.

Each ``Submissions`` method takes the journal (an ``Inbox`` open on the journal thread) and a
transition built from a strict request model, checks it against the latest checkpointed ledger
plus what the journal already holds, and only then calls ``Inbox.submit`` (which returns once the
entry is durable). Any refusal raises ``ApiError`` before the journal is touched.

Orders go through ``Engine.check_order`` of a throwaway engine (market, account, signature, slot,
margin: the CLI's codes) and the order book's grid and expiry checks on an empty book; cancels
through ``Ledger.validate``; withdrawals and margin moves through ``Ledger.validate`` after the
nonce check. The ledger they see is the checkpointed one with the account's in-flight
withdrawals and margin moves (pending in the journal, or included in a checkpoint the snapshot
does not have yet) applied to a copy, so a margin move followed at once by an order, or two
withdrawals in a row, are judged as the operator will judge them.

Order of checks, and why: authentication first (unknown market/account, bad signature: 404/401,
nothing charged to the account), then the account's rate limit (only an authenticated request
may spend an account's budget: nobody can exhaust someone else's), then ``duplicate`` (the same
signed request again, e.g. a client retry: 409 with the original's id), then the rules.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from isoperp.api.errors import ApiError
from isoperp.api.journal import AccountJournal
from isoperp.api.limits import RateLimiter, retry_after
from isoperp.api.models import NONCE_MAX
from isoperp.batch.builder import BatchBuilder
from isoperp.errors import ConfigError, ProtocolError, TransitionRejected
from isoperp.exchange.engine import Engine, incoming_order
from isoperp.ledger.ledger import Ledger
from isoperp.ledger.model import Account
from isoperp.ledger.transitions import CancelOrder, MarginTransfer, PlaceOrder, Withdraw
from isoperp.matching import OrderBook, OrderRejected
from isoperp.protocol.constants import FLAG_POST_ONLY, INSURANCE_ACCOUNT, ORDER_SLOTS, TIF_GTC
from isoperp.protocol.header import ZERO32, CheckpointHeader
from isoperp.protocol.signing import Domain, recover_signer, request_digest
from isoperp.service.inbox import Inbox, InboxEntry

logger = logging.getLogger(__name__)

AUTH_CODES = frozenset({"unknown_market", "unknown_account", "bad_signature"})
_BOOK_CODES_IGNORED = frozenset(
    # An empty book says nothing about these: the real book at the operator's cycle decides.
    {"post_only_would_cross", "fok_unfillable", "reduce_only_would_increase"}
)
_NO_HEADER = CheckpointHeader.genesis(ZERO32)  # the throwaway engine never seals


def rejected(exc: TransitionRejected) -> ApiError:
    return ApiError(exc.reason, exc.message)


def next_order_nonce(journal: AccountJournal, ledger: Ledger) -> int | None:
    """The smallest nonce above every order nonce used so far (journal or ledger) whose slot
    holds no live order (the CLI's rule); None when all 64 slots are busy or the nonces are
    used up."""
    used = [o.nonce for o in ledger.orders(account_id=journal.account_id)]
    top = journal.max_order_nonce()
    if top is not None:
        used.append(top)
    busy = {e.request.nonce % ORDER_SLOTS for e in journal.live_orders()}
    start = max(used, default=0) + 1
    for candidate in range(start, min(start + ORDER_SLOTS, NONCE_MAX + 1)):
        if candidate % ORDER_SLOTS not in busy:
            return candidate
    return None


def available_collateral(flights: Sequence[InboxEntry], account: Account) -> int:
    """Free collateral less the in-flight withdrawals and margin moves into positions."""
    out = 0
    for e in flights:
        r = e.request
        if isinstance(r, Withdraw) or (isinstance(r, MarginTransfer) and r.amount > 0):
            out += r.amount
    return max(0, account.collateral - out)


def simulated(ledger: Ledger, flights: Sequence[InboxEntry]) -> tuple[Ledger, list[str]]:
    """``ledger`` with ``flights`` applied to a copy (the ledger itself if there are none), and
    the reasons of those the ledger refused (their nonce is then not consumed)."""
    if not flights:
        return ledger, []
    view = ledger.copy()
    refused: list[str] = []
    for entry in flights:
        try:
            view.apply(entry.request)
        except TransitionRejected as exc:
            refused.append(f"request {entry.id}: {exc.reason}")
    return view, refused


class Submissions:
    """Validates and journals signed requests (runs on the journal thread only)."""

    def __init__(
        self,
        ledger: Ledger,
        domain: Domain,
        now: int,
        accounts: RateLimiter,
    ) -> None:
        self.ledger = ledger
        self.domain = domain
        self.now = now
        self.accounts = accounts

    # -- shared steps -----------------------------------------------------------------------------

    def _charge(self, account_id: int) -> None:
        wait = self.accounts.take(account_id)
        if wait > 0:
            raise ApiError(
                "rate_limited",
                f"account {account_id} is over its request rate",
                headers={"Retry-After": retry_after(wait)},
            )

    @staticmethod
    def _duplicate(entries: Sequence[InboxEntry], request: object) -> None:
        for e in entries:
            if e.status != "rejected" and e.request == request:
                raise ApiError(
                    "duplicate",
                    f"this exact request is already journal entry {e.id} ({e.status})",
                    request_id=e.id,
                )

    def _account(self, account_id: int) -> Account:
        account = self.ledger.account(account_id)
        if account is None:
            raise ApiError("unknown_account", f"no account {account_id}")
        return account

    def _owner_signed(self, request: Withdraw | MarginTransfer, account: Account) -> None:
        try:
            signer = recover_signer(request_digest(self.domain, request), request.signature)
        except ProtocolError as exc:
            raise ApiError("bad_signature", exc.message) from exc
        if signer != account.owner:
            raise ApiError("bad_signature", f"signed by {signer}, not the owner {account.owner}")

    @staticmethod
    def _journal(inbox: Inbox, request: object) -> int:
        try:
            return inbox.submit(request)
        except ConfigError as exc:  # a live twin appeared (same kind, account and nonce)
            raise ApiError("replay", exc.message) from exc

    # -- orders -----------------------------------------------------------------------------------

    def order(self, inbox: Inbox, order: PlaceOrder) -> int:
        journal = AccountJournal(inbox, order.account_id)
        view = self.ledger
        account = self.ledger.account(order.account_id)
        if account is not None:
            view, _ = simulated(self.ledger, journal.in_flight(account.nonce))
        engine = Engine(view, BatchBuilder(view, _NO_HEADER), self.domain, now=self.now)
        rejection: OrderRejected | None = None
        try:
            engine.check_order(order)
        except OrderRejected as exc:
            if exc.reason in AUTH_CODES:
                raise rejected(exc) from exc
            rejection = exc
        self._charge(order.account_id)
        same_nonce = journal.with_nonce(order.nonce)
        self._duplicate(same_nonce, order)
        if rejection is not None:
            raise rejected(rejection)
        self._order_journal_rules(same_nonce, journal.live_orders(), order)
        self._order_book_rules(view, order)
        return self._journal(inbox, order)

    @staticmethod
    def _order_journal_rules(
        same_nonce: Sequence[InboxEntry], live: Sequence[InboxEntry], order: PlaceOrder
    ) -> None:
        """What the checkpoint cannot know yet: orders and cancels in the journal. A nonce is
        used once (unless its request was rejected); a pending or resting order holds its slot."""
        for e in same_nonce:
            r = e.request
            if isinstance(r, PlaceOrder | CancelOrder) and e.status != "rejected":
                what = "order" if isinstance(r, PlaceOrder) else "cancel"
                raise ApiError(
                    "replay", f"nonce {order.nonce} was already used by {what} {e.id} ({e.status})"
                )
        slot = order.nonce % ORDER_SLOTS
        for e in live:
            if e.request.nonce % ORDER_SLOTS == slot:
                raise ApiError(
                    "slot_in_use",
                    f"slot {slot} holds order {e.request.nonce} ({e.status}, request {e.id})",
                )

    def _order_book_rules(self, view: Ledger, order: PlaceOrder) -> None:
        """The book's grid and expiry checks (off_tick, bad_size, below_min_size, expired) on an
        empty book of the market, and the ledger's post-only-needs-GTC rule."""
        market = view.market(order.market_id)
        assert market is not None  # check_order passed
        book = OrderBook(
            market.market_id,
            price_tick=market.price_tick,
            size_step=market.size_step,
            min_size=market.min_size,
        )
        position = view.position(order.account_id, order.market_id)
        try:
            book.place(
                incoming_order(order), now=self.now, position=position.size if position else 0
            )
        except OrderRejected as exc:
            if exc.reason not in _BOOK_CODES_IGNORED:
                raise rejected(exc) from exc
        if order.flags & FLAG_POST_ONLY and order.time_in_force != TIF_GTC:
            raise ApiError("bad_order", "post-only orders must be GTC")

    # -- cancels ----------------------------------------------------------------------------------

    def cancel(self, inbox: Inbox, cancel: CancelOrder) -> int:
        if cancel.account_id == INSURANCE_ACCOUNT:
            # The ledger takes 65 zero bytes as its signature: only the operator may send it.
            raise ApiError(
                "bad_signature", "the insurance account's cancels come from the operator"
            )
        try:
            self.ledger.validate(cancel)
            rejection: TransitionRejected | None = None
        except TransitionRejected as exc:
            if exc.reason in AUTH_CODES:
                raise rejected(exc) from exc
            rejection = exc
        self._charge(cancel.account_id)
        same_nonce = AccountJournal(inbox, cancel.account_id).with_nonce(cancel.nonce)
        self._duplicate(same_nonce, cancel)
        if rejection is not None:
            raise rejected(rejection)
        for e in same_nonce:
            if isinstance(e.request, CancelOrder) and e.status != "rejected":
                raise ApiError("replay", f"order {cancel.nonce} is already cancelled ({e.id})")
        return self._journal(inbox, cancel)

    # -- withdrawals and margin moves -------------------------------------------------------------

    def withdraw(self, inbox: Inbox, request: Withdraw) -> int:
        account = self._account(request.account_id)
        self._owner_signed(request, account)
        return self._signed_request(inbox, request, account)

    def margin(self, inbox: Inbox, request: MarginTransfer) -> int:
        account = self._account(request.account_id)
        if self.ledger.market(request.market_id) is None:
            raise ApiError("unknown_market", f"no market {request.market_id}")
        self._owner_signed(request, account)
        return self._signed_request(inbox, request, account)

    def _signed_request(
        self, inbox: Inbox, request: Withdraw | MarginTransfer, account: Account
    ) -> int:
        self._charge(account.account_id)
        journal = AccountJournal(inbox, account.account_id)
        self._duplicate(journal.with_nonce(request.nonce), request)
        flights = journal.in_flight(account.nonce)
        expected = account.nonce + len(flights)
        if request.nonce < expected:
            raise ApiError("replay", f"nonce {request.nonce} was already used; next is {expected}")
        if request.nonce > expected:
            raise ApiError("bad_nonce", f"nonce {request.nonce}, expected {expected}")
        view, refused = simulated(self.ledger, flights)
        try:
            view.validate(request)
        except TransitionRejected as exc:
            if exc.reason == "bad_nonce" and refused:
                raise ApiError(
                    "bad_nonce",
                    "an earlier pending request of this account will be refused ("
                    + ", ".join(refused)
                    + f"), so nonce {request.nonce} will not be reached",
                ) from exc
            raise rejected(exc) from exc
        return self._journal(inbox, request)
