"""Schemathesis with every check over user-service's own OpenAPI: the document tells the truth.

The service runs as a real uvicorn subprocess (the devstack launcher) on a fresh database, so
generated requests hit real PostgreSQL, Redis, Kafka and localstripe.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from paygate_devstack.schemathesis_kit import assert_spec_holds, isolated_stack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def services(paygate_stack: Any) -> Iterator[dict[str, Any]]:
    with isolated_stack(paygate_stack) as procs:
        yield procs


@pytest.fixture(scope="module")
def user_service_url(services: dict[str, Any]) -> str:
    url: str = services["user"].url
    return url


def test_every_check_passes_over_user_service_spec(
    paygate_stack: Any, services: dict[str, Any]
) -> None:
    # a customer with a saved card everywhere, payment-service's service token on /internal/*
    assert_spec_holds(
        paygate_stack,
        "user",
        running=services,
        save_card=True,
        internal_caller="payment-service",
        max_examples=15,
        min_operations=10,
        calls_per_operation=5,
        expect_client_errors=True,
    )


def test_the_signup_schema_states_the_password_policy_and_the_refused_domains(
    user_service_url: str,
) -> None:
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
