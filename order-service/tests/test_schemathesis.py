"""Schemathesis with every check over order-service's own OpenAPI: the document tells the truth.

user-service (a real customer's token) and order-service run as real subprocesses on a fresh
database; limits (transaction-service) are off here, test_limits.py covers them.
"""

from __future__ import annotations

from typing import Any

import pytest

from paygate_devstack.schemathesis_kit import assert_spec_holds

pytestmark = pytest.mark.slow


def test_every_check_passes_over_order_service_spec(paygate_stack: Any) -> None:
    assert_spec_holds(
        paygate_stack,
        "order",
        env={"ORDER_SERVICE_LIMITS_ENABLED": "false"},
        max_examples=15,
        min_operations=4,
    )
