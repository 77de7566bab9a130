"""At start-up the ledger takes admin-service's current configuration; admin down, it starts."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from paygate_common.internal.config import ConfigRead
from paygate_devstack.asgi import serve_asgi
from paygate_devstack.process import free_port

FEES = {
    "rules": [{"provider": None, "currency": None, "basis_points": 410, "fixed": 7}],
    "refund_returns_fee": False,
}


def admin_stand_in(served: list[str]) -> FastAPI:
    """admin-service's `/internal/config/{key}`, answered with its own response model."""
    app = FastAPI()

    @app.get("/internal/config/{key}")
    async def current(key: str) -> JSONResponse:
        served.append(key)
        if key == "fees":
            return JSONResponse(ConfigRead(key=key, version=3, value=FEES).model_dump(mode="json"))
        never_set = ConfigRead(key=key, version=0, value={"defaults": {}})
        return JSONResponse(never_set.model_dump(mode="json"))

    return app


async def test_start_up_loads_the_fee_schedule_admin_service_holds_now(
    start_transaction_service: Any,
) -> None:
    served: list[str] = []
    async with (
        serve_asgi(admin_stand_in(served)) as admin_url,
        start_transaction_service(service_urls={"admin": admin_url}) as svc,
    ):
        view = await svc.http.get("/admin/ledger/config", headers=svc.auth(uuid.uuid4(), "admin"))
    assert view.status_code == 200, view.text
    items = {i["key"]: i for i in view.json()["items"]}
    # fees: version 3 stored before any config.changed; limits: never set, not stored.
    assert items["fees"]["config_version"] == 3 and items["fees"]["value"] == FEES
    assert "limits" not in items
    assert sorted(served) == ["fees", "limits"]


async def test_with_admin_service_down_the_ledger_starts_on_its_defaults(
    start_transaction_service: Any,
) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    async with start_transaction_service(service_urls={"admin": down}) as svc:
        ready = await svc.http.get("/ready")
        view = await svc.http.get("/admin/ledger/config", headers=svc.auth(uuid.uuid4(), "admin"))
    assert ready.status_code == 200, ready.text
    assert view.json()["items"] == []
