"""Property-based API tests: schemathesis generates requests from the OpenAPI schema (valid
and invalid bodies, parameters and ids) and the API must never answer with a server error.
Runs on SQLite and PostgreSQL, as an administrator's token holding every permission."""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from .conftest import World, alert_payload


@pytest.fixture
def api_schema(client: TestClient, world: World) -> schemathesis.BaseSchema:
    token = world.token("a.admin", ["*"])
    # Records to find: alerts of both organisations (ids 1..), so generated ids hit some.
    client.post(
        "/api/v1/alerts",
        json=[alert_payload(i) for i in range(5)],
        headers={"Authorization": f"Bearer {token}"},
    )
    client.post(
        "/api/v1/alerts",
        json=[alert_payload(i, host="b") for i in range(5, 8)],
        headers={"Authorization": f"Bearer {world.token('b.analyst', ['alerts:write'])}"},
    )
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", client.app)
    schema.config.headers = {"Authorization": f"Bearer {token}"}  # type: ignore[union-attr]
    return schema


def test_no_server_errors(api_schema: schemathesis.BaseSchema) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 14  # every API operation is exercised
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=[not_a_server_error])

        check()
