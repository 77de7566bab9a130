"""Through the gateway: real processes (user, exchange-rate, gateway) on the devstack, the feed stand-in configured."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from paygate_devstack.ecb_feed import latest_weekday

PASSWORD = "correct-horse-battery-staple"
ENV = {
    "GATEWAY_RATE_LIMIT_ANON": "100000/second",
    "GATEWAY_RATE_LIMIT_USER": "100000/second",
    "GATEWAY_RATE_LIMIT_AUTH": "100000/second",
}


@pytest.fixture(scope="module")
def gateway(paygate_stack: Any) -> Iterator[str]:
    started = [paygate_stack.start_service(name, ENV) for name in ("user", "exchange-rate")]
    started.append(paygate_stack.start_service("gateway", ENV))
    try:
        yield started[-1].url + "/api/v1"
    finally:
        for proc in reversed(started):
            proc.stop()
            if proc in paygate_stack.started:
                paygate_stack.started.remove(proc)


async def test_signed_up_customer_reads_latest_rates_through_the_gateway(
    gateway: str, paygate_stack: Any
) -> None:
    async with httpx.AsyncClient(base_url=gateway, timeout=15) as http:
        assert (await http.get("/rates/latest")).status_code == 401  # JWT at the edge
        email = f"fx-{uuid.uuid4().hex[:10]}@example.com"
        r = await http.post(
            "/auth/signup", json={"email": email, "password": PASSWORD, "full_name": "FX Buyer"}
        )
        assert r.status_code == 201, r.text
        r = await http.post("/auth/signin", json={"email": email, "password": PASSWORD})
        token = r.json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}

        # The service fetched the stand-in's daily file at start (configured by the launcher).
        r = await http.get(
            "/rates/latest", params={"base": "eur", "symbols": "usd,jpy"}, headers=headers
        )
        assert r.status_code == 200, r.text
        body = r.json()
        published = paygate_stack.ecb_feed.state
        assert body["rates"] == {"usd": published.rates["USD"], "jpy": published.rates["JPY"]}
        assert body["date"] == (published.published or latest_weekday()).isoformat()
        assert body["stale"] is False

        r = await http.get(
            "/convert", params={"from": "usd", "to": "jpy", "amount": 1000}, headers=headers
        )
        assert r.status_code == 200 and r.json()["converted_amount"] > 0
        r = await http.get("/rates/latest", params={"base": "zzz"}, headers=headers)
        assert r.status_code == 422 and r.json()["code"] == "unknown_currency"
        # Internal routes are never reachable from outside.
        # The redeem route is `/internal/fx/quotes/{id}/redeem` at the service: the gateway has
        # no route for `/internal/…`, and under the public prefix no such path exists.
        for path in (
            f"/internal/fx/quotes/{uuid.uuid4()}/redeem",
            f"/fx/quotes/{uuid.uuid4()}/redeem",
        ):
            r = await http.post(path, headers=headers)
            assert r.status_code == 404, (path, r.status_code, r.text)
            assert r.headers["content-type"] == "application/problem+json"
