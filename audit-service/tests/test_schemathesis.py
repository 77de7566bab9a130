"""Schemathesis with every check over audit-service's own OpenAPI: the document tells the truth.

user-service (it issues the operator's JWT) and audit-service run as real subprocesses on a
fresh database; every audit route is admin-only, so generated requests carry the operator's
token and get past authentication into the queries.
"""

from __future__ import annotations

from typing import Any

import pytest

from paygate_devstack.schemathesis_kit import assert_spec_holds

pytestmark = pytest.mark.slow


def test_every_check_passes_over_audit_service_spec(paygate_stack: Any) -> None:
    assert_spec_holds(
        paygate_stack, "audit", customer=False, admin=True, max_examples=10, min_operations=8
    )
