"""Schemathesis with every check over notification-service's OpenAPI: the document tells the truth."""

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
    with service_behind_user_service(paygate_stack, "notification") as (user, notification):
        yield {"user": user.url, "notification": notification.url}


def test_every_check_passes_over_notification_service_spec(services: dict[str, str]) -> None:
    auth = customer_headers(services["user"], save_card=False)
    report = fuzz_openapi(
        services["notification"],
        headers_for=lambda case: auth,
        max_examples=12,
    )
    assert report.operations >= 3
    assert not report.failures, report.summary()
    assert any(200 <= s < 300 for s in report.statuses), report.summary()
