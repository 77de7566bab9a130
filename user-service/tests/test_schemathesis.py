"""Property-based run over user-service's own OpenAPI: no input may produce a server error.

The service runs as a real uvicorn subprocess (the devstack launcher) on a fresh database, so
generated requests hit real PostgreSQL, Redis, Kafka and localstripe.
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


class _PaymentService(ServiceSettings):
    service_name: ClassVar[str] = "payment-service"


@pytest.fixture(scope="module")
def user_service_url(paygate_stack: Any, postgres: Any) -> Iterator[str]:
    service = paygate_stack.start_service(
        "user",
        env={"USER_SERVICE_DATABASE_URL": postgres.create_database()},
        port=free_port(),
    )
    try:
        yield service.url
    finally:
        service.stop()


@pytest.fixture(scope="module")
def auth_headers(user_service_url: str, paygate_stack: Any) -> dict[str, dict[str, str]]:
    email = f"fuzz.{uuid.uuid4().hex[:8]}@example.com"
    password = "fuzzing-Password-" + secrets.token_hex(4)
    with httpx.Client(base_url=user_service_url, timeout=30) as client:
        client.post(
            "/auth/signup", json={"email": email, "password": password, "full_name": "Fuzz"}
        ).raise_for_status()
        token = client.post("/auth/signin", json={"email": email, "password": password}).json()[
            "access_token"
        ]
        client.post(
            "/users/me/payment-methods",
            json={"provider": "stripe", "token": "pm_card_visa"},
            headers={"Authorization": f"Bearer {token}"},
        ).raise_for_status()
    caller = _PaymentService(service_token_secret=paygate_stack.env["SERVICE_TOKEN_SECRET"])
    return {
        "user": {"Authorization": f"Bearer {token}"},
        "service": {
            "Authorization": "Bearer " + issue_service_token(caller, audience_service="user")
        },
    }


def test_no_input_makes_user_service_fail(
    user_service_url: str, auth_headers: dict[str, dict[str, str]]
) -> None:
    # `schemathesis.pytest.from_fixture` breaks on pytest 9 (`Function._nodeid`), so each
    # operation's strategy is driven by Hypothesis directly; same generation, same check.
    api = schemathesis.openapi.from_url(f"{user_service_url}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 10
    statuses: list[int] = []

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=30,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def no_server_error(case: Any) -> None:
            # Valid credentials so generated bodies get past authentication into domain code.
            kind = "service" if case.path.startswith("/internal/") else "user"
            headers = {} if case.headers and "Authorization" in case.headers else auth_headers[kind]
            response = case.call_and_validate(
                base_url=user_service_url,
                headers=headers,
                checks=[schemathesis.checks.not_a_server_error],
                timeout=30,
            )
            statuses.append(response.status_code)

        no_server_error()

    # The run really exercised the service: many calls, and some got past validation.
    assert len(statuses) >= 5 * len(operations)
    assert any(200 <= s < 300 for s in statuses)
    assert any(400 <= s < 500 for s in statuses)
