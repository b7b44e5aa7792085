"""API errors: one JSON shape, one table from error code to HTTP status.

Every error response is ``{"error": {"code": "...", "message": "..."}}`` (a ``duplicate`` also
carries the ``requestId`` of the journal entry it duplicates). Codes and statuses:

- 400 ``malformed_json`` (not JSON, NaN/Infinity, duplicate keys, nested too deep),
  ``validation`` (wrong types, missing or extra fields, out of range)
- 401 ``bad_signature``
- 404 ``unknown_market``, ``unknown_account``, ``not_found`` (no such route)
- 405 ``method_not_allowed``
- 409 ``replay``, ``duplicate``, ``stale_nonce``, ``bad_nonce``, ``slot_in_use``,
  ``order_exists``, ``order_closed``
- 413 ``body_too_large`` (checked before the body is parsed)
- 415 ``unsupported_media_type`` (a body that is not ``application/json``)
- 422 every other rejection by the exchange's rules, with the engine's or the ledger's code:
  ``insufficient_margin``, ``insufficient_collateral``, ``no_position``, ``off_tick``,
  ``bad_size``, ``below_min_size``, ``expired``, ``bad_order``, ``bad_recipient``, ...
- 429 ``rate_limited`` (with ``Retry-After``)
- 500 ``internal`` (a bug: never caused by input)

A rejected request changes nothing: it is never journaled.
"""

from __future__ import annotations

from typing import Any

STATUS_OF: dict[str, int] = {
    "malformed_json": 400,
    "validation": 400,
    "bad_signature": 401,
    "unknown_market": 404,
    "unknown_account": 404,
    "not_found": 404,
    "method_not_allowed": 405,
    "replay": 409,
    "duplicate": 409,
    "stale_nonce": 409,
    "bad_nonce": 409,
    "slot_in_use": 409,
    "order_exists": 409,
    "order_closed": 409,
    "body_too_large": 413,
    "unsupported_media_type": 415,
    "rate_limited": 429,
    "internal": 500,
}
SEMANTIC_STATUS = 422
"""The status of every code not in ``STATUS_OF``: a well-formed, authentic request that the
exchange's rules refuse."""

SEMANTIC_CODES = (
    "insufficient_margin",
    "insufficient_collateral",
    "no_position",
    "off_tick",
    "bad_size",
    "below_min_size",
    "expired",
    "bad_order",
    "bad_recipient",
)
"""The 422 codes the API documents (the engine and ledger may add others; they are 422 too)."""


def status_of(code: str) -> int:
    return STATUS_OF.get(code, SEMANTIC_STATUS)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


class ApiError(Exception):
    """A request the API refuses: ``code`` decides the status (``status_of``)."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        request_id: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status_of(code)
        self.headers = headers or {}
        self.request_id = request_id

    def body(self) -> dict[str, Any]:
        if self.request_id is not None:
            return error_body(self.code, self.message, requestId=self.request_id)
        return error_body(self.code, self.message)
