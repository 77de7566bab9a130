"""Schemathesis with every check over admin-service's own OpenAPI: the document tells the truth.

user-service (the operator's JWT, the users admin-service manages) and transaction-service (the
analytics it proxies) run beside admin-service as real subprocesses on a fresh database and a
broker of the admin tests' own; operator routes get the operator's token, `/internal/*` a
service token.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from paygate_devstack.schemathesis_kit import (
    fuzz_openapi,
    headers_by_route,
    isolated_stack,
    service_token_headers,
    sign_in_headers,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def services(paygate_stack: Any, admin_broker: Any) -> Iterator[dict[str, str]]:
    # configuration it publishes goes to the admin tests' own broker, not other tests' services
    env = {"KAFKA_BOOTSTRAP_SERVERS": admin_broker.bootstrap}
    with isolated_stack(paygate_stack, "transaction", "admin", env=env) as procs:
        yield {name: proc.url for name, proc in procs.items()}


def test_every_check_passes_over_admin_service_spec(
    services: dict[str, str], paygate_stack: Any
) -> None:
    credentials = headers_by_route(
        admin=sign_in_headers(services["user"]),
        service=service_token_headers(paygate_stack, "admin", caller="transaction-service"),
    )
    # `/admin/analytics` relays transaction-service's `/internal/analytics`: fuzzed wherever the
    # ledger serves it (the route lands this wave); relaying a 404 would be a spec lie.
    ledger = httpx.get(f"{services['transaction']}/openapi.json", timeout=30).json()
    has_analytics = "/internal/analytics" in ledger["paths"]
    report = fuzz_openapi(
        services["admin"],
        headers_for=credentials,
        max_examples=10,
        include=lambda op: has_analytics or op.path != "/admin/analytics",
    )
    assert report.operations >= 8, report.summary()
    assert not report.failures, report.summary()
    assert report.calls >= 4 * report.operations, report.summary()
    assert any(200 <= s < 300 for s in report.statuses), report.summary()
