"""Schemathesis with every check over exchange-rate-service's own OpenAPI: the document tells the truth.

user-service (real customer and operator tokens) and exchange-rate-service run as real
subprocesses on a fresh database, with the ECB feed stand-in configured by the stack; public
routes get a customer, `/admin/*` the operator, `/internal/*` a service token.
"""

from __future__ import annotations

from typing import Any

import pytest

from paygate_devstack.schemathesis_kit import assert_spec_holds

pytestmark = pytest.mark.slow


def test_every_check_passes_over_exchange_rate_service_spec(paygate_stack: Any) -> None:
    assert_spec_holds(
        paygate_stack,
        "exchange-rate",
        admin=True,
        internal_caller="payment-service",
        max_examples=12,
        min_operations=10,
    )
