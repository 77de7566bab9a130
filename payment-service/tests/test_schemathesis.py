"""Schemathesis with every check over payment-service's own OpenAPI: the document tells the truth."""

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
    with service_behind_user_service(
        paygate_stack,
        "payment",
        env={"PAYMENT_SERVICE_CONNECTOR": "sandbox", "PAYMENT_SERVICE_LIMITS_ENABLED": "false"},
    ) as (user, payment):
        yield {"user": user.url, "payment": payment.url}


def test_every_check_passes_over_payment_service_spec(services: dict[str, str]) -> None:
    auth = customer_headers(services["user"])
    report = fuzz_openapi(
        services["payment"],
        headers_for=lambda case: auth,
        max_examples=12,
        # Provider webhooks are verified by signature, not by schema: a fuzzer cannot sign.
        include=lambda op: not op.path.startswith("/webhooks/"),
    )
    assert report.operations >= 3
    assert not report.failures, report.summary()
    assert any(200 <= s < 300 for s in report.statuses), report.summary()
