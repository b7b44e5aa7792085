"""A schemathesis pass over /openapi.json: positive and negative cases for every operation
(bounded examples), checked for no server errors, documented status codes, content types and
response schemas, and that schema-violating requests are refused."""

import pytest
import schemathesis  # pinned in requirements.lock: the pass always runs in make test
from api_fixtures import Exchange
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from isoperp.api import ApiLimits
from isoperp.api.app import create_app

UNLIMITED = ApiLimits(ip_rate=1e9, ip_burst=10**9, account_rate=1e9, account_burst=10**9)


@pytest.fixture
def api_schema(tmp_path):
    app = create_app(Exchange(tmp_path, limits=UNLIMITED).state())
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_schemathesis_fuzz(case):
    case.call_and_validate(
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            negative_data_rejection,
        ]
    )
