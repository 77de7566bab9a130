"""Schemathesis with every check over user-service's own OpenAPI: the document tells the truth.

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

from paygate_common.auth import issue_service_token
from paygate_common.settings import ServiceSettings
from paygate_devstack.process import free_port
from paygate_devstack.schemathesis_kit import fuzz_openapi

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


def test_every_check_passes_over_user_service_spec(
    user_service_url: str, auth_headers: dict[str, dict[str, str]]
) -> None:
    # Every check (response/status/content-type conformance, negative data rejected, positive
    # accepted, ...), positive and negative cases: the shared run every service uses.
    report = fuzz_openapi(
        user_service_url,
        # Valid credentials so generated bodies get past authentication into domain code.
        headers_for=lambda case: auth_headers[
            "service" if case.path.startswith("/internal/") else "user"
        ],
        max_examples=15,
    )
    assert report.operations >= 10
    assert not report.failures, report.summary()
    # The run really exercised the service: many calls, and some got past validation.
    assert report.calls >= 5 * report.operations
    assert any(200 <= s < 300 for s in report.statuses)
    assert any(400 <= s < 500 for s in report.statuses)


def test_the_signup_schema_states_the_password_policy_and_the_refused_domains(
    user_service_url: str,
) -> None:
    import re

    spec = httpx.get(f"{user_service_url}/openapi.json", timeout=30).json()
    signup = spec["components"]["schemas"]["SignupRequest"]["properties"]
    assert (signup["password"]["minLength"], signup["password"]["maxLength"]) == (10, 128)
    pattern = re.compile(signup["email"]["pattern"])
    for email, refused in (
        ("shop@paygate.test", True),
        ("shop@mail.LOCAL", True),
        ("shop@localhost", True),
        ("shop@example.com", False),
        ("shop@test.example.com", False),
    ):
        # the document and the service agree on each address
        assert (pattern.match(email) is None) is refused, email
        answer = httpx.post(
            f"{user_service_url}/auth/signup",
            json={"email": email, "password": "a-fine-long-passphrase", "full_name": "Shop"},
            timeout=30,
        )
        assert answer.status_code == (422 if refused else 201), (email, answer.text)
    short = httpx.post(
        f"{user_service_url}/auth/signup",
        json={"email": "short@example.com", "password": "9-chars!!", "full_name": "Shop"},
        timeout=30,
    )
    assert short.status_code == 422 and short.json()["reason"] == "too_short", short.text
