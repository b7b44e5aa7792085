"""Bad request bodies: malformed JSON, wrong types, extra or missing fields, floats, bad hex,
oversized bodies, wrong media types -> the exact 4xx status and code, and nothing journaled."""

import json
import sys

import pytest
from api_fixtures import ALICE, CAROL, PATH_OF, USDC, body_of, error_code

from isoperp.api import strictjson
from isoperp.ledger.transitions import PlaceOrder


def check(ex, response, status, code):
    assert response.status_code == status, response.text
    assert error_code(response) == code
    assert ex.journal() == []


@pytest.mark.parametrize(
    "raw",
    [
        b"{bad",
        b"",
        b"[",
        b'{"accountId": 0,}',
        b'{"accountId": NaN}',
        b'{"accountId": Infinity}',
        b'{"accountId": 0, "accountId": 1}',
        b"\xff\xfe\x00garbage",
        b"[" * 5000 + b"]" * 5000,
        b'{"a":' * 2500 + b"1" + b"}" * 2500,
    ],
    ids=[
        "truncated",
        "empty",
        "open-bracket",
        "trailing-comma",
        "nan",
        "infinity",
        "duplicate-key",
        "binary",
        "deep-array",
        "deep-object",
    ],
)
@pytest.mark.parametrize("path", sorted(PATH_OF.values()))
def test_post_malformed_json_is_400(ex, client, path, raw):
    response = client.post(path, content=raw, headers={"content-type": "application/json"})
    check(ex, response, 400, "malformed_json")


@pytest.mark.parametrize("raw", [b"[]", b'"order"', b"1", b"null", b"true"])
def test_post_json_that_is_not_an_object_is_validation(ex, client, raw):
    response = client.post("/v1/orders", content=raw, headers={"content-type": "application/json"})
    check(ex, response, 400, "validation")


ORDER_MUTATIONS = {
    "account-id-as-string": {"accountId": "0"},
    "account-id-as-bool": {"accountId": True},
    "account-id-as-float": {"accountId": 0.0},
    "account-id-negative": {"accountId": -1},
    "account-id-huge": {"accountId": 2**70},
    "market-id-as-bool": {"marketId": False},
    "is-buy-as-int": {"isBuy": 1},
    "is-buy-as-string": {"isBuy": "true"},
    "price-as-number": {"price": 600000},
    "price-as-float": {"price": 600000.0},
    "price-fraction": {"price": "600000.5"},
    "price-exponent": {"price": "6e5"},
    "price-negative": {"price": "-600000"},
    "price-leading-zero": {"price": "0600000"},
    "price-plus": {"price": "+600000"},
    "price-spaces": {"price": " 600000"},
    "price-above-u64": {"price": str(2**64)},
    "size-as-float": {"size": 1.5},
    "size-null": {"size": None},
    "nonce-as-bool": {"nonce": True},
    "nonce-beyond-the-journal": {"nonce": str(2**63)},
    "tif-out-of-range": {"timeInForce": 3},
    "tif-as-string": {"timeInForce": "0"},
    "flags-out-of-range": {"flags": 4},
    "expiry-as-number": {"expiry": 0},
    "signature-short": {"signature": "0x" + "11" * 64},
    "signature-long": {"signature": "0x" + "11" * 66},
    "signature-no-prefix": {"signature": "11" * 65},
    "signature-not-hex": {"signature": "0x" + "zz" * 65},
    "signature-bytes-list": {"signature": [1, 2, 3]},
    "extra-field": {"leverage": 20},
    "snake-case-field": {"account_id": 0},
    "nested-object": {"price": {"value": "1"}},
}


@pytest.mark.parametrize("mutation", list(ORDER_MUTATIONS.values()), ids=list(ORDER_MUTATIONS))
def test_post_order_wrong_types_are_validation(ex, client, mutation):
    body = {**body_of(ex.order(ALICE)), **mutation}
    check(ex, client.post("/v1/orders", json=body), 400, "validation")


@pytest.mark.parametrize(
    "field", ["accountId", "marketId", "isBuy", "price", "size", "nonce", "signature"]
)
def test_post_order_missing_field_is_validation(ex, client, field):
    body = body_of(ex.order(ALICE))
    del body[field]
    response = client.post("/v1/orders", json=body)
    check(ex, response, 400, "validation")
    assert field in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "mutation",
    [
        {"amount": 1.5},
        {"amount": 1000000},
        {"amount": "1.5"},
        {"amount": "0"},
        {"amount": "-1"},
        {"amount": str(2**128)},
        {"recipient": "0x1234"},
        {"recipient": "0x70997970c51812dc3a010c7d01b50e0d17dc79C8"},  # bad EIP-55 checksum
        {"recipient": 5},
        {"nonce": 0},
        {"extra": "x"},
    ],
    ids=lambda m: next(iter(m)) + "=" + repr(next(iter(m.values())))[:20],
)
def test_post_withdrawal_wrong_types_are_validation(ex, client, mutation):
    body = {**body_of(ex.withdrawal(CAROL, USDC)), **mutation}
    check(ex, client.post("/v1/withdrawals", json=body), 400, "validation")


@pytest.mark.parametrize(
    "mutation",
    [{"amount": "0"}, {"amount": -5}, {"amount": str(2**127)}, {"amount": "-0"}, {"marketId": "0"}],
)
def test_post_margin_wrong_types_are_validation(ex, client, mutation):
    body = {**body_of(ex.margin(ALICE, USDC)), **mutation}
    check(ex, client.post("/v1/margin", json=body), 400, "validation")


@pytest.mark.parametrize(
    "mutation", [{"nonce": 1}, {"nonce": str(2**64 - 1)}, {"accountId": "0"}, {"isBuy": True}]
)
def test_post_cancel_wrong_types_are_validation(ex, client, mutation):
    body = {**body_of(ex.cancel(ALICE, 1)), **mutation}
    check(ex, client.post("/v1/cancels", json=body), 400, "validation")


@pytest.mark.parametrize("media", ["text/plain", "application/x-www-form-urlencoded", "a/b"])
def test_post_non_json_media_type_is_415(ex, client, media):
    raw = json.dumps(body_of(ex.order(ALICE))).encode()
    response = client.post("/v1/orders", content=raw, headers={"content-type": media})
    check(ex, response, 415, "unsupported_media_type")


def test_post_json_with_charset_or_without_media_type_is_accepted(ex, client):
    raw = json.dumps(body_of(ex.order(ALICE, nonce=1))).encode()
    ok = client.post(
        "/v1/orders", content=raw, headers={"content-type": "application/json; charset=utf-8"}
    )
    assert ok.status_code == 202, ok.text
    raw = json.dumps(body_of(ex.order(ALICE, nonce=2))).encode()
    assert client.post("/v1/orders", content=raw).status_code == 202


def test_post_oversized_body_is_413_before_parsing(ex, client):
    body = body_of(ex.order(ALICE))
    body["padding"] = "x" * (16 * 1024)  # would also be an extra field: the size wins
    check(ex, client.post("/v1/orders", json=body), 413, "body_too_large")


def test_post_oversized_garbage_is_413_not_malformed(ex, client):
    response = client.post(
        "/v1/withdrawals", content=b"{" * 20_000, headers={"content-type": "application/json"}
    )
    check(ex, response, 413, "body_too_large")


def test_post_oversized_streamed_body_without_length_is_413(ex, client):
    def chunks():
        for _ in range(40):
            yield b" " * 1024

    response = client.post(
        "/v1/orders", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in {k.lower() for k in response.request.headers}
    check(ex, response, 413, "body_too_large")


def test_post_body_just_under_the_limit_is_parsed(ex, client):
    raw = json.dumps(body_of(ex.order(ALICE))).encode()
    raw = raw + b" " * (16 * 1024 - len(raw))
    assert len(raw) == 16 * 1024
    response = client.post("/v1/orders", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 202, response.text


def test_unknown_route_and_method_have_error_bodies(ex, client):
    check(ex, client.get("/v1/nothing"), 404, "not_found")
    check(ex, client.get("/v1/orders"), 405, "method_not_allowed")
    check(ex, client.delete("/v1/markets"), 405, "method_not_allowed")


def test_post_order_with_valid_shape_but_forged_fields_never_journals(ex, client):
    order = ex.order(ALICE)
    for change in ({"size": "101"}, {"isBuy": False}, {"expiry": "5"}, {"accountId": 1}):
        response = client.post("/v1/orders", json={**body_of(order), **change})
        assert response.status_code == 401, (change, response.text)
    assert ex.journal() == []
    assert isinstance(order, PlaceOrder)


def test_post_deep_json_is_malformed_whatever_the_recursion_limit(ex, client):
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)  # as test runners and embedders sometimes do
    try:
        for raw in (b"[" * 5000 + b"]" * 5000, b'{"a":' * 40 + b"1" + b"}" * 40):
            response = client.post(
                "/v1/orders", content=raw, headers={"content-type": "application/json"}
            )
            check(ex, response, 400, "malformed_json")
    finally:
        sys.setrecursionlimit(limit)


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ('{"a": 1}', 0),  # few brackets: not scanned
        ("[" * 33 + "]" * 33, 33),
        ('["' + "[" * 40 + '"]', 1),
        ('["\\"' + "[" * 40 + '"]', 1),
        ('[{"k": "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"}, ' + "[" * 31 + "]" * 31 + "]", 32),
    ],
)
def test_nesting_depth_ignores_brackets_in_strings(text, depth):
    assert strictjson.nesting_depth(text) == depth


def test_strict_json_accepts_depth_32_and_refuses_33():
    assert strictjson.loads("[" * 32 + "]" * 32) == eval("[" * 31 + "[]" + "]" * 31)
    with pytest.raises(strictjson.MalformedJson):
        strictjson.loads("[" * 33 + "]" * 33)
