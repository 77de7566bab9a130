"""Schemathesis with every check over transaction-service's OpenAPI: the document tells the truth.

user-service (real customer and operator tokens) and transaction-service run as real
subprocesses on a fresh database and the ledger tests' own broker; public routes get a
customer, `/admin/*` the operator, `/internal/*` order-service's service token.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from paygate_devstack.schemathesis_kit import (
    customer_headers,
    fuzz_openapi,
    headers_by_route,
    isolated_stack,
    service_token_headers,
    sign_in_headers,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def services(paygate_stack: Any, ledger_kafka: Any) -> Iterator[dict[str, str]]:
    env = {"KAFKA_BOOTSTRAP_SERVERS": ledger_kafka.bootstrap}
    with isolated_stack(paygate_stack, "transaction", env=env) as procs:
        yield {name: proc.url for name, proc in procs.items()}


def test_every_check_passes_over_transaction_service_spec(
    services: dict[str, str], paygate_stack: Any
) -> None:
    credentials = headers_by_route(
        customer=customer_headers(services["user"], save_card=False),
        admin=sign_in_headers(services["user"]),
        service=service_token_headers(paygate_stack, "transaction", caller="order-service"),
    )
    report = fuzz_openapi(services["transaction"], headers_for=credentials, max_examples=12)
    assert report.operations >= 6, report.summary()
    assert not report.failures, report.summary()
    assert report.calls >= 4 * report.operations, report.summary()
    assert any(200 <= s < 300 for s in report.statuses), report.summary()
