"""The kit's positive-data check: a documented business-rule code is an answer, nothing else is."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Annotated, ClassVar

import pytest
import uvicorn
from fastapi import APIRouter, Body
from schemathesis.generation import GenerationMode

from paygate_common.app import create_service_app
from paygate_common.errors import InvalidRequest, business_rule
from paygate_common.settings import ServiceSettings
from paygate_devstack.process import free_port
from paygate_devstack.schemathesis_kit import fuzz_openapi

MINIMUM = 50  # the "provider minimum" the schema does not state
Amount = Annotated[int, Body(embed=True, ge=1, le=1000)]

router = APIRouter()


def _charge(amount: int) -> dict[str, int]:
    if amount < MINIMUM:
        raise InvalidRequest("Below the minimum charge", code="amount_below_minimum")
    return {"amount": amount}


@router.post("/documented", responses={422: business_rule("amount_below_minimum", description="x")})
async def documented(amount: Amount) -> dict[str, int]:
    return _charge(amount)


@router.post("/undocumented")
async def undocumented(amount: Amount) -> dict[str, int]:
    return _charge(amount)


@router.post("/other-code", responses={422: business_rule("limit_exceeded", description="x")})
async def other_code(amount: Amount) -> dict[str, int]:
    return _charge(amount)


class _Settings(ServiceSettings):
    service_name: ClassVar[str] = "kit-probe"


@pytest.fixture(scope="module")
def probe_url() -> Iterator[str]:
    app = create_service_app(
        _Settings(environment="test", log_json=False),
        title="kit probe",
        routers=[router],
        use_database=False,
        use_redis=False,
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the probe app did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_only_a_documented_business_rule_code_passes_the_positive_check(probe_url: str) -> None:
    report = fuzz_openapi(
        probe_url,
        max_examples=40,
        modes=(GenerationMode.POSITIVE,),
        include=lambda op: op.path != "/ready" and op.path != "/health",
    )
    assert report.operations == 3
    # amounts on both sides of the minimum were sent; the documented route's 422s passed
    assert report.statuses[200] and report.statuses[422], report.summary()
    assert "POST /documented [positive]" not in report.failures, report.summary()
    for label in ("POST /undocumented [positive]", "POST /other-code [positive]"):
        assert label in report.failures, report.summary()
        assert "Valid data should have been accepted" in report.failures[label][0]
