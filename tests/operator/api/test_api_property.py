"""Property: any body POSTed to a submission endpoint gets a non-5xx answer, and the journal
changes only on a 202 (by exactly the entry whose id the answer carries)."""

import json

from api_fixtures import ALICE, CAROL, USDC, body_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PATHS = ["/v1/orders", "/v1/cancels", "/v1/withdrawals", "/v1/margin"]
FIELDS = [
    "accountId",
    "marketId",
    "isBuy",
    "price",
    "size",
    "timeInForce",
    "flags",
    "nonce",
    "expiry",
    "signature",
    "recipient",
    "amount",
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**130), max_value=2**130)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["0", "1", "-1", "600000", "0x" + "ab" * 65, "1e3", "0x00", " 1"])
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def templates(ex):
    return {
        "/v1/orders": body_of(ex.order(ALICE, nonce=11, size=10)),
        "/v1/cancels": body_of(ex.cancel(ALICE, 12)),
        "/v1/withdrawals": body_of(ex.withdrawal(CAROL, USDC)),
        "/v1/margin": body_of(ex.margin(CAROL, USDC)),
    }


def check(ex, client, path, raw):
    before = ex.journal()
    response = client.post(path, content=raw, headers={"content-type": "application/json"})
    assert response.status_code < 500, response.text
    after = ex.journal()
    if response.status_code == 202:
        assert len(after) == len(before) + 1
        assert after[-1][0] == response.json()["requestId"]
    else:
        assert after == before, response.text
        assert set(response.json()) == {"error"}


@SETTINGS
@given(path=st.sampled_from(PATHS), value=json_values)
def test_random_json_never_5xx_and_never_journaled(ex, client, path, value):
    check(ex, client, path, json.dumps(value).encode())


@SETTINGS
@given(path=st.sampled_from(PATHS), raw=st.binary(max_size=300))
def test_random_bytes_never_5xx_and_never_journaled(ex, client, path, raw):
    check(ex, client, path, raw)


@SETTINGS
@given(
    path=st.sampled_from(PATHS),
    changes=st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=3),
    dropped=st.sets(st.sampled_from(FIELDS), max_size=2),
)
def test_mutated_valid_bodies_never_5xx_and_journal_only_when_accepted(
    ex, client, path, changes, dropped
):
    body = {**templates(ex)[path], **changes}
    for name in dropped:
        body.pop(name, None)
    check(ex, client, path, json.dumps(body).encode())
