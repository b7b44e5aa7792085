"""The OpenAPI document: every route, request model and error response documented (the
schemathesis pass over it is test_api_schemathesis.py)."""

import pytest

SUBMISSIONS = {
    "/v1/orders": "OrderRequest",
    "/v1/cancels": "CancelRequest",
    "/v1/withdrawals": "WithdrawalRequest",
    "/v1/margin": "MarginRequest",
}
READS = [
    "/v1/markets",
    "/v1/book/{market}",
    "/v1/trades",
    "/v1/accounts/{account}",
    "/v1/accounts/{account}/positions",
    "/v1/accounts/{account}/orders",
    "/v1/accounts/{account}/requests",
    "/v1/checkpoints",
    "/v1/forced-requests",
    "/v1/health",
]


@pytest.fixture
def spec(client):
    return client.get("/openapi.json").json()


def test_openapi_lists_every_route(spec):
    assert set(spec["paths"]) == set(SUBMISSIONS) | set(READS)


@pytest.mark.parametrize(("path", "model"), SUBMISSIONS.items())
def test_openapi_submissions_document_body_and_every_error(spec, path, model):
    operation = spec["paths"][path]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": f"#/components/schemas/{model}"}
    schema = spec["components"]["schemas"][model]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["signature"]["pattern"] == "^0x[0-9a-fA-F]{130}$"
    assert schema["properties"]["nonce"]["type"] == "string"
    responses = operation["responses"]
    assert set(responses) == {"202", "400", "401", "404", "409", "413", "415", "422", "429"}
    for status, response in responses.items():
        if status != "202":
            ref = response["content"]["application/json"]["schema"]["$ref"]
            assert ref == "#/components/schemas/ErrorResponse", status


@pytest.mark.parametrize("path", READS)
def test_openapi_reads_document_their_errors(spec, path):
    responses = spec["paths"][path]["get"]["responses"]
    assert {"200", "400", "413", "429"} <= set(responses)
    if "{account}" in path or "{market}" in path:
        assert "404" in responses


def test_openapi_has_no_undocumented_fastapi_validation_shape(spec):
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path in spec["paths"].values():
        for operation in path.values():
            assert "422" not in operation["responses"] or operation["requestBody"]


def test_openapi_money_fields_are_strings(spec):
    schemas = spec["components"]["schemas"]
    for model, fields in {
        "OrderRequest": ["price", "size", "nonce", "expiry"],
        "WithdrawalRequest": ["amount", "nonce"],
        "MarginRequest": ["amount", "nonce"],
        "PositionModel": ["size", "quote", "equity", "liquidationPrice"],
        "AccountModel": ["collateral", "available", "nonce", "nextNonce"],
        "MarketView": ["markPrice", "openInterest", "fundingIndex"],
    }.items():
        for name in fields:
            prop = schemas[model]["properties"][name]
            types = [prop.get("type")] + [o.get("type") for o in prop.get("anyOf", [])]
            assert "string" in types and "integer" not in types, (model, name, prop)
