"""The audit trail end to end: a checkout through the gateway lands in audit-service, in order,
with the gateway's request id; only an admin reads it."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from e2e_support import ADMIN_EMAIL, ADMIN_PASSWORD, Suite, paying_customer, sign_in, sign_up

from paygate_devstack.events_testing import wait_for
from paygate_devstack.pytest_plugin import ServiceProcess

pytestmark = pytest.mark.e2e


async def records(http: httpx.AsyncClient, admin: Any, **params: Any) -> list[dict[str, Any]]:
    r = await http.get("/admin/audit/events", params=params, headers=admin.headers)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items[::-1]  # oldest first


async def test_a_checkout_through_the_gateway_is_in_the_trail_with_its_request_id(
    suite: Suite, audit_service: ServiceProcess, http: httpx.AsyncClient
) -> None:
    admin = await sign_in(http, ADMIN_EMAIL, ADMIN_PASSWORD)
    buyer = await paying_customer(http)
    request_id = uuid.uuid4().hex
    r = await http.post(
        "/orders",
        json={"amount": 2500, "currency": "usd"},
        headers={**buyer.headers, "X-Request-ID": request_id},
    )
    assert r.status_code == 201, r.text
    assert r.headers["x-request-id"] == request_id
    order = r.json()
    assert await buyer.wait_status(order["id"], {"paid", "failed"}) == "paid"

    async def checkout_recorded() -> list[dict[str, Any]] | None:
        found = await records(http, admin, request_id=request_id)
        actions = [i["action"] for i in found]
        return found if "payment.succeeded" in actions else None

    trail = await wait_for(checkout_recorded, timeout=30)
    # Chain order is the order of recording; across topics the business order is occurred_at
    # (a batch is linked in that order; one payment's transitions share a partition).
    happened = [i["action"] for i in sorted(trail, key=lambda i: (i["occurred_at"], i["seq"]))]
    assert happened[0] == "order.created"
    assert happened.index("payment.succeeded") > happened.index("order.created")
    payments = [i["action"] for i in trail if i["action"].startswith("payment.")]
    assert payments[-1] == "payment.succeeded"
    assert {i["request_id"] for i in trail} == {request_id}
    assert {i["actor_id"] for i in trail} == {order["user_id"]}

    history = await http.get(f"/admin/audit/entities/order/{order['id']}", headers=admin.headers)
    assert "order.created" in [i["action"] for i in history.json()["items"]]

    verify = await http.get("/admin/audit/verify", headers=admin.headers)
    assert verify.status_code == 200
    assert verify.json()["ok"] is True

    for path in ("/admin/audit/events", "/admin/audit/verify", "/admin/audit/summary"):
        denied = await http.get(path, headers=buyer.headers)
        assert denied.status_code == 403, path


async def test_a_sign_in_through_the_gateway_is_audited_with_ip_and_request_id(
    suite: Suite, audit_service: ServiceProcess, http: httpx.AsyncClient
) -> None:
    admin = await sign_in(http, ADMIN_EMAIL, ADMIN_PASSWORD)
    buyer = await sign_up(http)
    request_id = uuid.uuid4().hex
    from e2e_support import PASSWORD

    r = await http.post(
        "/auth/signin",
        json={"email": buyer.email, "password": PASSWORD},
        headers={"X-Request-ID": request_id},
    )
    assert r.status_code == 200

    async def signed_in() -> list[dict[str, Any]] | None:
        found = await records(http, admin, request_id=request_id, action="auth.signed_in")
        return found or None

    (record,) = await wait_for(signed_in, timeout=30)
    assert record["outcome"] == "succeeded"
    assert record["source_ip"] == "127.0.0.1"
    assert buyer.email not in str(record)
