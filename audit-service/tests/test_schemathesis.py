"""Schemathesis with every check over audit-service's own OpenAPI: the document tells the truth.

user-service (it issues the operator's JWT) and audit-service run as real subprocesses on a
fresh database; every audit route is admin-only, so generated requests carry the operator's
token and get past authentication into the queries.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from paygate_devstack.schemathesis_kit import (
    fuzz_openapi,
    headers_by_route,
    isolated_stack,
    sign_in_headers,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def services(paygate_stack: Any) -> Iterator[dict[str, str]]:
    with isolated_stack(paygate_stack, "audit") as procs:
        yield {name: proc.url for name, proc in procs.items()}


def test_every_check_passes_over_audit_service_spec(services: dict[str, str]) -> None:
    admin = sign_in_headers(services["user"])
    report = fuzz_openapi(
        services["audit"], headers_for=headers_by_route(admin=admin), max_examples=10
    )
    assert report.operations >= 8, report.summary()
    assert not report.failures, report.summary()
    assert report.calls >= 4 * report.operations, report.summary()
    assert any(200 <= s < 300 for s in report.statuses), report.summary()
