"""Schemathesis with every check over order-service's own OpenAPI: the document tells the truth."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from paygate_devstack.schemathesis_kit import (
    customer_headers,
    fuzz_openapi,
    service_behind_user_service,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def services(paygate_stack: Any) -> Iterator[dict[str, str]]:
    # order-service alone: limits (transaction-service) are covered by test_limits.py
    env = {"ORDER_SERVICE_LIMITS_ENABLED": "false"}
    with service_behind_user_service(paygate_stack, "order", env=env) as (user, order):
        yield {"user": user.url, "order": order.url}


def test_every_check_passes_over_order_service_spec(services: dict[str, str]) -> None:
    auth = customer_headers(services["user"], save_card=False)
    report = fuzz_openapi(
        services["order"],
        headers_for=lambda case: auth,
        max_examples=15,
    )
    assert report.operations >= 4
    assert not report.failures, report.summary()
    assert report.calls >= 4 * report.operations
    assert any(200 <= s < 300 for s in report.statuses), report.summary()
