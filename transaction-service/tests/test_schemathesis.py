"""Schemathesis with every check over transaction-service's own OpenAPI: the document tells the truth.

user-service (real customer and operator tokens) and transaction-service run as real
subprocesses on a fresh database and the ledger tests' own broker; public routes get a
customer, `/admin/*` the operator, `/internal/*` order-service's service token.
"""

from __future__ import annotations

from typing import Any

import pytest

from paygate_devstack.schemathesis_kit import assert_spec_holds

pytestmark = pytest.mark.slow


def test_every_check_passes_over_transaction_service_spec(
    paygate_stack: Any, ledger_kafka: Any
) -> None:
    assert_spec_holds(
        paygate_stack,
        "transaction",
        env={"KAFKA_BOOTSTRAP_SERVERS": ledger_kafka.bootstrap},
        admin=True,
        internal_caller="order-service",
        max_examples=12,
        min_operations=6,
    )
