"""Schemathesis with every check over admin-service's own OpenAPI: the document tells the truth.

user-service (the operator's JWT, the users admin-service manages) and transaction-service (the
analytics it proxies) run beside admin-service as real subprocesses on a fresh database and a
broker of the admin tests' own; operator routes get the operator's token, `/internal/*` a
service token.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from paygate_common.internal.users import AdminUserPage, AdminUserRead
from paygate_devstack.schemathesis_kit import (
    assert_spec_holds,
    customer_headers,
    isolated_stack,
    sign_in_headers,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def running(paygate_stack: Any, admin_broker: Any) -> Iterator[dict[str, Any]]:
    # configuration it publishes goes to the admin tests' own broker, not other tests' services
    env = {"KAFKA_BOOTSTRAP_SERVERS": admin_broker.bootstrap}
    with isolated_stack(paygate_stack, "transaction", "admin", env=env) as procs:
        yield procs


@pytest.fixture(scope="module")
def services(running: dict[str, Any]) -> dict[str, str]:
    return {name: proc.url for name, proc in running.items()}


def test_every_check_passes_over_admin_service_spec(
    paygate_stack: Any, running: dict[str, Any]
) -> None:
    assert_spec_holds(
        paygate_stack,
        "admin",
        running=running,
        customer=False,
        admin=True,
        internal_caller="transaction-service",
        max_examples=10,
        min_operations=8,
    )


def test_users_are_read_and_changed_through_user_services_own_models(
    services: dict[str, str],
) -> None:
    """`/admin/users` parses the real user-service's answers with the models it serves them as
    (`AdminUserPage`, `AdminUserRead`), and relays its refusals unchanged."""
    operator = sign_in_headers(services["user"])
    customer = customer_headers(services["user"], save_card=False)
    with httpx.Client(base_url=services["user"], timeout=30) as user_service:
        email = user_service.get("/users/me", headers=customer).json()["email"]
    with httpx.Client(base_url=services["admin"], timeout=30, headers=operator) as admin:
        found = admin.get("/admin/users", params={"q": email})
        assert found.status_code == 200, found.text
        page = AdminUserPage.model_validate_json(found.content)
        assert [(u.email, u.role, u.disabled) for u in page.items] == [(email, "customer", False)]

        changed = admin.patch(f"/admin/users/{page.items[0].id}", json={"role": "merchant"})
        assert changed.status_code == 200, changed.text
        assert AdminUserRead.model_validate_json(changed.content).role == "merchant"
        again = AdminUserPage.model_validate_json(
            admin.get("/admin/users", params={"q": email, "role": "merchant"}).content
        )
        assert [u.email for u in again.items] == [email]

        unknown = admin.patch(f"/admin/users/{uuid.uuid4()}", json={"disabled": True})
        assert unknown.status_code == 404, unknown.text
        assert unknown.json()["code"] == "user_not_found"
        # a field user-service does not take is refused here, before any call
        assert admin.patch(f"/admin/users/{uuid.uuid4()}", json={"roles": "x"}).status_code == 422
