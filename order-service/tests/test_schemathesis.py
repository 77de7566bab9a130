"""Schemathesis with every check over order-service's own OpenAPI: the document tells the truth."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from paygate_devstack.process import free_port
from paygate_devstack.schemathesis_kit import customer_headers, fuzz_openapi

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def services(paygate_stack: Any, postgres: Any) -> Iterator[dict[str, str]]:
    database = postgres.create_database()
    user = paygate_stack.start_service(
        "user", env={"USER_SERVICE_DATABASE_URL": database}, port=free_port()
    )
    order = paygate_stack.start_service(
        "order",
        env={
            "ORDER_SERVICE_DATABASE_URL": database,
            "JWKS_URL": f"{user.url}/.well-known/jwks.json",
            # order-service alone: limits (transaction-service) are covered by test_limits.py
            "ORDER_SERVICE_LIMITS_ENABLED": "false",
        },
        port=free_port(),
    )
    try:
        yield {"user": user.url, "order": order.url}
    finally:
        order.stop()
        user.stop()


def test_every_check_passes_over_order_service_spec(services: dict[str, str]) -> None:
    auth = customer_headers(services["user"], save_card=False)
    report = fuzz_openapi(
        services["order"],
        headers_for=lambda case: auth,
        max_examples=15,
        known_violations={
            "POST /orders [positive]": "an amount under the currency's provider minimum is "
            "422 amount_below_minimum, a per-currency rule the JSON Schema does not state",
        },
    )
    assert report.operations >= 4
    assert not report.failures, report.summary()
    assert report.calls >= 4 * report.operations
    assert any(200 <= s < 300 for s in report.statuses), report.summary()
