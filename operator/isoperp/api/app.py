"""The operator's HTTP + WebSocket API (FastAPI): ``create_app(state)``.

Routes (all under ``/v1``; JSON; integers beyond 2^53 as decimal strings, see ``models``):

| method | path | what |
|---|---|---|
| POST | /orders | a signed order -> 202 ``Accepted`` (journaled) |
| POST | /cancels | a signed cancel -> 202 |
| POST | /withdrawals | a signed withdrawal -> 202 |
| POST | /margin | a signed margin move -> 202 |
| GET | /markets | markets with their grid, margins, fees, mark, funding |
| GET | /book/{market} | depth of a market (symbol or id), ``?depth=`` levels |
| GET | /trades | recent fills, ``?market=&limit=`` |
| GET | /accounts/{account} | collateral, available, nonces (account id or owner address) |
| GET | /accounts/{account}/positions | positions with equity, margins, liquidation price |
| GET | /accounts/{account}/orders | the account's orders in the journal, ``?status=&limit=`` |
| GET | /accounts/{account}/requests | the account's journal entries and statuses, ``?limit=`` |
| GET | /checkpoints | posted checkpoints, status and time to finality, ``?limit=`` |
| GET | /forced-requests | the forced-request queue |
| GET | /health | liveness |
| WS | /ws | feed: ``{"op": "subscribe", "channels": [...]}`` |

A submission is answered only after ``Inbox.submit`` returned (the entry is durable); a refused
one is never journaled (``validation``). Errors: ``errors``. Limits: ``limits``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI, Query, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from isoperp.api import strictjson, views
from isoperp.api.errors import SEMANTIC_CODES, STATUS_OF, ApiError, error_body
from isoperp.api.journal import AccountJournal
from isoperp.api.limits import LimitsMiddleware, RateLimiter
from isoperp.api.models import (
    Accepted,
    AccountModel,
    BookView,
    CancelRequest,
    CheckpointsResponse,
    ErrorResponse,
    ForcedRequestModel,
    HealthModel,
    MarginRequest,
    MarketView,
    OrderModel,
    OrderRequest,
    PositionModel,
    RequestModel,
    TradeModel,
    WithdrawalRequest,
)
from isoperp.api.state import ApiState
from isoperp.api.validation import Submissions, available_collateral, next_order_nonce
from isoperp.api.ws import FeedSocket
from isoperp.ledger.transitions import CancelOrder, MarginTransfer, PlaceOrder, Withdraw
from isoperp.service.inbox import STATUSES, Inbox

logger = logging.getLogger(__name__)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

API_VERSION = "1"
MAX_TRADES = 1000
MAX_DEPTH = 500
MAX_ENTRIES = 1000


class Journal:
    """The journal on its own thread: sqlite3 connections belong to the thread that opened them,
    and one thread also serializes validation-then-submit across requests."""

    def __init__(self, open_inbox: Callable[[], Inbox]) -> None:
        self._open = open_inbox
        self._inbox: Inbox | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="isoperp-journal")

    def _with_inbox(self, fn: Callable[[Inbox], T]) -> T:
        if self._inbox is None:
            self._inbox = self._open()
        return fn(self._inbox)

    async def run(self, fn: Callable[[Inbox], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._with_inbox, fn)

    def close(self) -> None:
        def close_inbox() -> None:
            if self._inbox is not None:
                self._inbox.close()
                self._inbox = None

        self._executor.submit(close_inbox).result()
        self._executor.shutdown(wait=True)


# --------------------------------------------------------------------------------- body parsing

_JSON_TYPES = ("application/json",)


def parse_json(body: bytes) -> Any:
    """Strict JSON (``strictjson``); ``malformed_json`` otherwise."""
    try:
        return strictjson.loads(body)
    except strictjson.MalformedJson as exc:
        raise ApiError("malformed_json", f"the body is not valid JSON: {exc}") from exc


def describe(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


async def parse_body(request: Request, model: type[M]) -> M:
    content_type = request.headers.get("content-type")
    if content_type is not None:
        media = content_type.split(";")[0].strip().lower()
        if media not in _JSON_TYPES:
            raise ApiError("unsupported_media_type", f"send application/json, not {media!r}")
    data = parse_json(await request.body())
    if not isinstance(data, dict):
        raise ApiError("validation", "the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError("validation", describe(exc)) from exc


# ----------------------------------------------------------------------------------- OpenAPI

_REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    OrderRequest,
    CancelRequest,
    WithdrawalRequest,
    MarginRequest,
)

_DESCRIPTIONS = {
    400: "malformed_json or validation",
    401: "bad_signature",
    404: "unknown_market, unknown_account (or not_found)",
    409: "replay, duplicate, stale_nonce, bad_nonce, slot_in_use, order_exists, order_closed",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "a rule of the exchange refused it: " + ", ".join(SEMANTIC_CODES) + ", ...",
    429: "rate_limited (see Retry-After)",
}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": ErrorResponse, "description": _DESCRIPTIONS[s]} for s in statuses}


READ_ERRORS = (400, 413, 429)
SUBMIT_ERRORS = (400, 401, 404, 409, 413, 415, 422, 429)


def _body(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
            },
        }
    }


DESCRIPTION = """
Signed requests (EIP-712, PROTOCOL section 3.1) go in as JSON whose fields are the typed
message's (camelCase) plus `signature` (0x + 65 bytes). Every uint64/uint128/int128 value
(prices in ticks, sizes in lots, nonces, expiries, micro-USDC amounts) is a decimal string.
A 202 means the request is in the operator's durable journal; it is applied (or rejected, with a
reason in `/v1/accounts/{account}/requests`) in the next cycle.

Errors are `{"error": {"code", "message"}}`: 400 malformed_json / validation, 401 bad_signature,
404 unknown_market / unknown_account, 409 replay / duplicate / stale_nonce / bad_nonce /
slot_in_use, 413 body_too_large, 415 unsupported_media_type, 422 rule rejections
(insufficient_margin, off_tick, ...), 429 rate_limited.

WebSocket `/v1/ws`: send `{"op": "subscribe", "channels": ["book:BTC-USD", "trades",
"liquidations", "checkpoints"]}` (optional `"id"` echoed back); answers
`{"type": "subscribed", "channels": [...]}`, a `snapshot` per book channel, then
`{"type": "update", "channel", "data"}` messages. `unsubscribe` and `ping` work alike; mistakes
come back as `{"type": "error", "error": {"code", "message"}}`. A client that does not read its
messages is disconnected (close code 4001).
"""


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in _REQUEST_MODELS:
        spec = model.model_json_schema(
            by_alias=True, ref_template="#/components/schemas/{model}", mode="validation"
        )
        components.update(spec.pop("$defs", {}))
        components[model.__name__] = spec
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            responses = operation.get("responses", {})
            auto = responses.get("422", {}).get("content", {}).get("application/json", {})
            if auto.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                del responses["422"]  # FastAPI's own; ours is documented where it applies
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    app.openapi_schema = schema
    return schema


# ------------------------------------------------------------------------------------ the app


def create_app(state: ApiState) -> FastAPI:
    """The API over ``state``'s providers. Serve it with uvicorn (``server.ApiServer``)."""
    limits = state.limits
    journal = Journal(state.inbox)
    ip_limiter = RateLimiter(
        limits.ip_rate, limits.ip_burst, state.monotonic, max_keys=limits.max_tracked_keys
    )
    account_limiter = RateLimiter(
        limits.account_rate,
        limits.account_burst,
        state.monotonic,
        max_keys=limits.max_tracked_keys,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.feed.bind(asyncio.get_running_loop())
        yield
        journal.close()

    app = FastAPI(
        title="isoperp operator API",
        version=API_VERSION,
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.api_state = state
    app.state.journal = journal
    app.add_middleware(LimitsMiddleware, limiter=ip_limiter, max_body_bytes=limits.max_body_bytes)
    _install_error_handlers(app)
    v1 = APIRouter(prefix="/v1")
    _submission_routes(v1, state, journal, account_limiter)
    _market_routes(v1, state)
    _account_routes(v1, state, journal)
    _status_routes(v1, state)

    @v1.websocket("/ws")
    async def feed_socket(websocket: WebSocket) -> None:
        await FeedSocket(websocket, state).run()

    app.include_router(v1)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _submission_routes(
    v1: APIRouter, state: ApiState, journal: Journal, account_limiter: RateLimiter
) -> None:
    def submissions() -> Submissions:
        return Submissions(state.ledger(), state.domain, state.now(), account_limiter)

    def route(path: str, model: type[BaseModel], summary: str) -> Any:
        return v1.post(
            path,
            status_code=202,
            response_model=Accepted,
            responses=_errors(*SUBMIT_ERRORS),
            openapi_extra=_body(model),
            summary=summary,
        )

    @route("/orders", OrderRequest, "Submit a signed order")
    async def post_order(request: Request) -> Accepted:
        body = await parse_body(request, OrderRequest)
        order = PlaceOrder(
            body.account_id,
            body.market_id,
            body.is_buy,
            body.price,
            body.size,
            body.time_in_force,
            body.flags,
            body.nonce,
            body.expiry,
            body.signature,
        )
        rid = await journal.run(lambda inbox: submissions().order(inbox, order))
        return Accepted(
            request_id=rid, kind="order", account_id=order.account_id, nonce=str(order.nonce)
        )

    @route("/cancels", CancelRequest, "Cancel an order (or burn an unused order nonce)")
    async def post_cancel(request: Request) -> Accepted:
        body = await parse_body(request, CancelRequest)
        cancel = CancelOrder(body.account_id, body.nonce, body.signature)
        rid = await journal.run(lambda inbox: submissions().cancel(inbox, cancel))
        return Accepted(
            request_id=rid, kind="cancel", account_id=cancel.account_id, nonce=str(cancel.nonce)
        )

    @route("/withdrawals", WithdrawalRequest, "Withdraw free collateral to L1")
    async def post_withdrawal(request: Request) -> Accepted:
        body = await parse_body(request, WithdrawalRequest)
        withdraw = Withdraw(
            body.account_id, body.recipient, body.amount, body.nonce, body.signature
        )
        rid = await journal.run(lambda inbox: submissions().withdraw(inbox, withdraw))
        return Accepted(
            request_id=rid,
            kind="withdrawal",
            account_id=withdraw.account_id,
            nonce=str(withdraw.nonce),
        )

    @route(
        "/margin",
        MarginRequest,
        "Move margin into (amount > 0) or out of (< 0) an isolated position",
    )
    async def post_margin(request: Request) -> Accepted:
        body = await parse_body(request, MarginRequest)
        move = MarginTransfer(
            body.account_id, body.market_id, body.amount, body.nonce, body.signature
        )
        rid = await journal.run(lambda inbox: submissions().margin(inbox, move))
        return Accepted(
            request_id=rid, kind="margin", account_id=move.account_id, nonce=str(move.nonce)
        )


def _market_routes(v1: APIRouter, state: ApiState) -> None:
    @v1.get("/markets", response_model=list[MarketView], responses=_errors(*READ_ERRORS))
    def get_markets() -> list[MarketView]:
        return [views.market_view(m) for m in state.ledger().markets]

    @v1.get(
        "/book/{market}",
        response_model=BookView,
        responses=_errors(*READ_ERRORS, 404),
        summary="Depth of a market's book (by symbol or id)",
    )
    def get_book(market: str, depth: int = Query(20, ge=1, le=MAX_DEPTH)) -> BookView:
        m = views.resolve_market(state.ledger(), market)
        return views.book_view(m, state.book(m.market_id), depth, state.now())

    @v1.get(
        "/trades",
        response_model=list[TradeModel],
        responses=_errors(*READ_ERRORS, 404),
        summary="Recent fills (newest first)",
    )
    def get_trades(
        market: str | None = Query(None, max_length=32, description="symbol or id"),
        limit: int = Query(100, ge=1, le=MAX_TRADES),
    ) -> list[TradeModel]:
        ledger = state.ledger()
        market_id = None if market is None else views.resolve_market(ledger, market).market_id
        return [views.trade_view(ledger, t) for t in state.trades(market_id, limit)[:limit]]


def _account_routes(v1: APIRouter, state: ApiState, journal: Journal) -> None:
    @v1.get(
        "/accounts/{account}",
        response_model=AccountModel,
        responses=_errors(*READ_ERRORS, 404),
        summary="An account by id or owner address",
    )
    async def get_account(account: str) -> AccountModel:
        ledger = state.ledger()
        acct = views.resolve_account(ledger, account)

        def read(inbox: Inbox) -> AccountModel:
            entries = AccountJournal(inbox, acct.account_id)
            flights = entries.in_flight(acct.nonce)
            return views.account_view(
                acct,
                available=available_collateral(flights, acct),
                next_nonce=acct.nonce + len(flights),
                next_order_nonce=next_order_nonce(entries, ledger),
                pending=entries.pending_count(),
            )

        return await journal.run(read)

    @v1.get(
        "/accounts/{account}/positions",
        response_model=list[PositionModel],
        responses=_errors(*READ_ERRORS, 404),
        summary="Isolated positions at the latest checkpoint, valued at the mark",
    )
    def get_positions(account: str) -> list[PositionModel]:
        ledger = state.ledger()
        acct = views.resolve_account(ledger, account)
        out = []
        for p in ledger.positions(account_id=acct.account_id):
            market = ledger.market(p.market_id)
            if market is not None:
                out.append(views.position_view(p, market))
        return out

    @v1.get(
        "/accounts/{account}/orders",
        response_model=list[OrderModel],
        responses=_errors(*READ_ERRORS, 404),
        summary="The account's orders as the journal has them",
    )
    async def get_orders(
        account: str,
        status: str | None = Query(None, description="one of " + ", ".join(STATUSES)),
        limit: int = Query(100, ge=1, le=MAX_ENTRIES, description="the newest N, oldest first"),
    ) -> list[OrderModel]:
        if status is not None and status not in STATUSES:
            raise ApiError("validation", f"status must be one of {', '.join(STATUSES)}")
        ledger = state.ledger()
        acct = views.resolve_account(ledger, account)
        entries = await journal.run(
            lambda inbox: AccountJournal(inbox, acct.account_id).recent(
                kind="PlaceOrder", status=status, limit=limit
            )
        )
        return [views.order_view(ledger, e) for e in entries]

    @v1.get(
        "/accounts/{account}/requests",
        response_model=list[RequestModel],
        responses=_errors(*READ_ERRORS, 404),
        summary="The account's latest journal entries (every kind), oldest first",
    )
    async def get_requests(
        account: str,
        limit: int = Query(100, ge=1, le=MAX_ENTRIES, description="the newest N, oldest first"),
    ) -> list[RequestModel]:
        acct = views.resolve_account(state.ledger(), account)
        entries = await journal.run(
            lambda inbox: AccountJournal(inbox, acct.account_id).recent(limit=limit)
        )
        return [views.request_view(e) for e in entries]


def _status_routes(v1: APIRouter, state: ApiState) -> None:
    @v1.get(
        "/checkpoints",
        response_model=CheckpointsResponse,
        responses=_errors(*READ_ERRORS),
        summary="Posted checkpoints (newest first) with their finality",
    )
    def get_checkpoints(limit: int = Query(50, ge=1, le=1000)) -> CheckpointsResponse:
        now = state.now()
        cps = state.checkpoints()
        finalized = [c.seq for c in cps if c.finalized]
        return CheckpointsResponse(
            latest_seq=cps[-1].seq if cps else None,
            finalized_seq=max(finalized) if finalized else None,
            checkpoints=[views.checkpoint_view(c, now) for c in reversed(cps[-limit:])],
        )

    @v1.get(
        "/forced-requests",
        response_model=list[ForcedRequestModel],
        responses=_errors(*READ_ERRORS),
        summary="The Settlement's forced-request queue",
    )
    def get_forced() -> list[ForcedRequestModel]:
        now = state.now()
        return [views.forced_view(f, now) for f in state.forced()]

    @v1.get("/health", response_model=HealthModel, responses=_errors(*READ_ERRORS))
    def get_health() -> HealthModel:
        cps = state.checkpoints()
        return HealthModel(
            status="ok",
            time=state.now(),
            latest_seq=cps[-1].seq if cps else None,
            state_root="0x" + cps[-1].state_root.hex() if cps else "",
            markets=len(state.ledger().markets),
            feed_subscribers=state.feed.subscriber_count(),
        )


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def request_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ())) or "request"
        return JSONResponse(
            error_body("validation", f"{where}: {first.get('msg')}"), status_code=400
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "validation")
        status = STATUS_OF.get(code, exc.status_code)
        return JSONResponse(
            error_body(code, str(exc.detail)), status_code=status, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def internal(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("internal error: %s", exc)
        return JSONResponse(error_body("internal", "internal error"), status_code=500)


__all__ = ["Journal", "create_app", "parse_json"]
