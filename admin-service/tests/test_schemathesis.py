"""Schemathesis with every check over admin-service's own OpenAPI: the document tells the truth.

user-service (the operator's JWT, the users admin-service manages) and transaction-service (the
analytics it proxies) run beside admin-service as real subprocesses on a fresh database and a
broker of the admin tests' own; operator routes get the operator's token, `/internal/*` a
service token.
"""

from __future__ import annotations

from typing import Any

import pytest

from paygate_devstack.schemathesis_kit import assert_spec_holds

pytestmark = pytest.mark.slow


def test_every_check_passes_over_admin_service_spec(paygate_stack: Any, admin_broker: Any) -> None:
    # configuration it publishes goes to the admin tests' own broker, not other tests' services
    assert_spec_holds(
        paygate_stack,
        "admin",
        beside=("transaction",),
        env={"KAFKA_BOOTSTRAP_SERVERS": admin_broker.bootstrap},
        customer=False,
        admin=True,
        internal_caller="transaction-service",
        max_examples=10,
        min_operations=8,
    )
