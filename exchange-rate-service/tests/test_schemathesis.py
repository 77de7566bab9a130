"""Property-based run over exchange-rate-service's own OpenAPI: no input may produce a server error.

user-service (for real customer and admin tokens) and exchange-rate-service run as uvicorn
subprocesses on a fresh database, with the ECB feed stand-in configured by the stack.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from paygate_common.auth import issue_service_token
from paygate_common.settings import ServiceSettings
from paygate_devstack.process import free_port

pytestmark = pytest.mark.slow

ADMIN_EMAIL = "fx-ops@example.com"
ADMIN_PASSWORD = "fx-admin-passphrase-" + secrets.token_hex(4)


class _PaymentService(ServiceSettings):
    service_name: ClassVar[str] = "payment-service"


@pytest.fixture(scope="module")
def services(paygate_stack: Any, postgres: Any) -> Iterator[dict[str, str]]:
    env = {
        "DATABASE_URL": postgres.create_database(),
        "USER_SERVICE_BOOTSTRAP_ADMIN_EMAIL": ADMIN_EMAIL,
        "USER_SERVICE_BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    user = paygate_stack.start_service("user", env)
    rates = paygate_stack.start_service("exchange-rate", env, port=free_port())
    try:
        yield {"user": user.url, "rates": rates.url}
    finally:
        for proc in (rates, user):
            proc.stop()
            if proc in paygate_stack.started:
                paygate_stack.started.remove(proc)


def _sign_in(user_url: str, email: str, password: str) -> str:
    with httpx.Client(base_url=user_url, timeout=30) as client:
        r = client.post("/auth/signin", json={"email": email, "password": password})
        r.raise_for_status()
        token: str = r.json()["access_token"]
        return token


@pytest.fixture(scope="module")
def auth_headers(services: dict[str, str], paygate_stack: Any) -> dict[str, dict[str, str]]:
    email = f"fx.fuzz.{uuid.uuid4().hex[:8]}@example.com"
    password = "fuzzing-Password-" + secrets.token_hex(4)
    with httpx.Client(base_url=services["user"], timeout=30) as client:
        client.post(
            "/auth/signup", json={"email": email, "password": password, "full_name": "Fuzz"}
        ).raise_for_status()
    caller = _PaymentService(service_token_secret=paygate_stack.env["SERVICE_TOKEN_SECRET"])
    token = issue_service_token(caller, audience_service="exchange-rate", ttl_seconds=3600)
    return {
        "user": {"Authorization": f"Bearer {_sign_in(services['user'], email, password)}"},
        "admin": {
            "Authorization": f"Bearer {_sign_in(services['user'], ADMIN_EMAIL, ADMIN_PASSWORD)}"
        },
        "service": {"Authorization": f"Bearer {token}"},
    }


def test_no_input_makes_exchange_rate_service_fail(
    services: dict[str, str], auth_headers: dict[str, dict[str, str]]
) -> None:
    base_url = services["rates"]
    api = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 10
    statuses: list[int] = []

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def no_server_error(case: Any) -> None:
            # Valid credentials so generated input gets past authentication into domain code.
            if case.path.startswith("/internal/"):
                kind = "service"
            elif case.path.startswith("/admin/"):
                kind = "admin"
            else:
                kind = "user"
            headers = {} if case.headers and "Authorization" in case.headers else auth_headers[kind]
            response = case.call_and_validate(
                base_url=base_url,
                headers=headers,
                checks=[schemathesis.checks.not_a_server_error],
                timeout=30,
            )
            statuses.append(response.status_code)

        no_server_error()

    assert len(statuses) >= 5 * len(operations)
    assert any(200 <= s < 300 for s in statuses)
    assert any(400 <= s < 500 for s in statuses)
