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
    customer_headers,
    fuzz_openapi,
    headers_by_route,
    isolated_stack,
    service_token_headers,
    sign_in_headers,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def services(paygate_stack: Any, admin_broker: Any) -> Iterator[dict[str, str]]:
    # configuration it publishes goes to the admin tests' own broker, not other tests' services
    env = {"KAFKA_BOOTSTRAP_SERVERS": admin_broker.bootstrap}
    with isolated_stack(paygate_stack, "transaction", "admin", env=env) as procs:
        yield {name: proc.url for name, proc in procs.items()}


def test_every_check_passes_over_admin_service_spec(
    services: dict[str, str], paygate_stack: Any
) -> None:
    credentials = headers_by_route(
        admin=sign_in_headers(services["user"]),
        service=service_token_headers(paygate_stack, "admin", caller="transaction-service"),
    )
    # `/admin/analytics` relays transaction-service's `/internal/analytics`: fuzzed wherever the
    # ledger serves it (the route lands this wave); relaying a 404 would be a spec lie.
    ledger = httpx.get(f"{services['transaction']}/openapi.json", timeout=30).json()
    has_analytics = "/internal/analytics" in ledger["paths"]
    report = fuzz_openapi(
        services["admin"],
        headers_for=credentials,
        max_examples=10,
        include=lambda op: has_analytics or op.path != "/admin/analytics",
    )
    assert report.operations >= 8, report.summary()
    assert not report.failures, report.summary()
    assert report.calls >= 4 * report.operations, report.summary()
    assert any(200 <= s < 300 for s in report.statuses), report.summary()


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
