"""The service as `make run` starts it: alembic migrations, uvicorn factory, env configuration."""

from __future__ import annotations

from typing import Any

import httpx
import pytest


@pytest.mark.slow
async def test_payment_service_migrates_and_becomes_ready_as_a_subprocess(
    service_process: Any,
) -> None:
    service = service_process(
        "payment",
        env={"PAYMENT_SERVICE_CONNECTOR": "sandbox", "PAYMENT_SERVICE_LIMITS_ENABLED": "false"},
    )
    async with httpx.AsyncClient(base_url=service.url) as client:
        ready = await client.get("/ready")
        docs = await client.get("/openapi.json")
    assert ready.status_code == 200, ready.text
    assert set(ready.json()["checks"]) >= {"database", "kafka", "redis"}
    assert {"/payments/{payment_id}", "/webhooks/stripe"} <= set(docs.json()["paths"])
