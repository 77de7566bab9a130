"""Schemathesis with every check over payment-service's own OpenAPI: the document tells the truth.

user-service (a customer with a saved test card) and payment-service on the sandbox connector
run as real subprocesses on a fresh database; provider webhooks are verified by signature, not
by schema (a fuzzer cannot sign), so they are left out.
"""

from __future__ import annotations

from typing import Any

import pytest

from paygate_devstack.schemathesis_kit import assert_spec_holds

pytestmark = pytest.mark.slow


def test_every_check_passes_over_payment_service_spec(paygate_stack: Any) -> None:
    assert_spec_holds(
        paygate_stack,
        "payment",
        env={"PAYMENT_SERVICE_CONNECTOR": "sandbox", "PAYMENT_SERVICE_LIMITS_ENABLED": "false"},
        save_card=True,
        max_examples=12,
        min_operations=3,
        include=lambda op: not op.path.startswith("/webhooks/"),
    )
