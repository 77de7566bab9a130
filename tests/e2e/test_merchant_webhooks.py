"""Merchant webhooks through the gateway: a paid order reaches the merchant's endpoint signed
(Standard Webhooks), the delivery log and a manual retry work at /api/v1/webhooks, and the
providers' callbacks under /api/v1/webhooks/ still reach payment-service."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import httpx
import pytest
from e2e_support import Suite, paying_customer, sign_up
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from standardwebhooks import Webhook, WebhookVerificationError

from paygate_devstack.asgi import serve_asgi
from paygate_devstack.events_testing import wait_for

pytestmark = pytest.mark.timeout(400)


async def test_a_paid_order_reaches_the_merchant_signed_and_the_log_retries_through_the_gateway(
    suite: Suite, http: httpx.AsyncClient
) -> None:
    received: list[tuple[dict[str, str], bytes, float]] = []
    app = FastAPI()

    @app.post("/paygate")
    async def hook(request: Request) -> JSONResponse:
        received.append((dict(request.headers), await request.body(), time.time()))
        return JSONResponse({"ok": True})

    merchant = await paying_customer(http)
    async with serve_asgi(app) as receiver:
        put = await http.put(
            "/webhooks/settings",
            json={"url": f"{receiver}/paygate", "enabled_events": ["payment.*"]},
            headers=merchant.headers,
        )
        assert put.status_code == 200, put.text
        secret = put.json()["secret"]

        order = (await merchant.order(amount=3100)).json()
        assert await merchant.wait_status(order["id"], {"paid", "failed"}) == "paid"

        def succeeded() -> list[Any] | None:
            found = [r for r in received if b'"payment.succeeded"' in r[1]]
            return found or None

        headers, body, arrived = (await wait_for(succeeded, timeout=20))[0]
        event = Webhook(secret).verify(body, headers)
        assert event["data"]["order_id"] == order["id"]
        assert event["data"]["amount"] == 3100
        # From the payment event to the merchant's endpoint: within two seconds.
        assert arrived - datetime.fromisoformat(event["timestamp"]).timestamp() < 2.0
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(body.replace(b"3100", b"1"), headers)

        log = (await http.get("/webhooks", headers=merchant.headers)).json()["items"]
        paid = next(d for d in log if d["event_type"] == "payment.succeeded")
        assert paid["webhook_id"] == headers["webhook-id"]
        before = len(received)
        retried = await http.post(f"/webhooks/{paid['id']}/retry", headers=merchant.headers)
        assert retried.status_code == 202
        await wait_for(lambda: len(received) > before or None, timeout=20)
        assert received[-1][0]["webhook-id"] == paid["webhook_id"]

    # Someone else's delivery is not found, and the log needs a token at the edge.
    stranger = await sign_up(http)
    other = await http.post(f"/webhooks/{paid['id']}/retry", headers=stranger.headers)
    assert other.status_code == 404
    assert (await http.get("/webhooks")).status_code == 401
    # /webhooks/stripe is still payment-service's, public, and checks Stripe's signature.
    stripe = await http.post("/webhooks/stripe", content=b"{}")
    assert stripe.status_code in (400, 401, 403)
    assert stripe.json().get("code") != "token_missing"
