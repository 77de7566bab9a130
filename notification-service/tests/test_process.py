"""notification-service as the launcher runs it: migrations from the env, uvicorn, /ready."""

from __future__ import annotations

from typing import Any

import httpx
import pytest


@pytest.mark.slow
async def test_the_service_migrates_starts_and_is_ready_as_a_process(service_process: Any) -> None:
    service = service_process("notification")
    async with httpx.AsyncClient(base_url=service.url) as http:
        ready = await http.get("/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "redis": "ok", "kafka": "ok"}
        docs = await http.get("/openapi.json")
        assert "/admin/notifications/dead-letters/{notification_id}/replay" in docs.json()["paths"]
