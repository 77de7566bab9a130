"""Schemathesis with every check over notification-service's own OpenAPI: the document tells the truth.

user-service (a real customer's token) and notification-service run as real subprocesses on a
fresh database; every route gets the customer.
"""

from __future__ import annotations

from typing import Any

import pytest

from paygate_devstack.schemathesis_kit import assert_spec_holds

pytestmark = pytest.mark.slow


def test_every_check_passes_over_notification_service_spec(paygate_stack: Any) -> None:
    assert_spec_holds(paygate_stack, "notification", max_examples=12, min_operations=3)
