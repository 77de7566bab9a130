"""The merchant dashboard in Debian's Chromium, through the gateway: a failed webhook retried
from its row turns green without a reload; two merchants each see only their own payments,
balances, history, webhooks, deliveries and keys, and cannot act on the other's."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from admin_support import (
    authorise,
    gateway,
    ledger_has,
    only_our_own_host,
    paid_order,
    sign_in_page,
)
from e2e_support import PASSWORD, Customer, Suite, paying_customer, sign_up
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from paygate_devstack.asgi import serve_asgi
from paygate_devstack.browser import RecordedPage, shot
from paygate_devstack.events_testing import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]

DASHBOARD_PAGES = ("/", "/webhooks", "/api-keys")


@pytest.fixture
def shots(artifacts_dir: Path) -> Path:
    return artifacts_dir / "merchant-dashboard"


def dashboard(suite: Suite) -> str:
    return gateway(suite) + "/dashboard"


async def test_a_failed_webhook_retried_from_its_row_turns_green_without_a_reload(
    suite: Suite, services: Any, http: httpx.AsyncClient, page: RecordedPage, shots: Path
) -> None:
    answer = {"status": 500}
    received: list[tuple[dict[str, str], bytes]] = []
    receiver_app = FastAPI()

    @receiver_app.post("/paygate")
    async def hook(request: Request) -> JSONResponse:
        received.append((dict(request.headers), await request.body()))
        return JSONResponse({"ok": answer["status"] < 300}, status_code=answer["status"])

    merchant = await paying_customer(http)
    async with serve_asgi(receiver_app) as receiver:
        await sign_in_page(page, dashboard(suite), merchant.email, PASSWORD)
        await page.page.get_by_role("link", name="Webhooks").click()
        await page.page.get_by_label("Endpoint URL").fill(f"{receiver}/paygate")
        await page.page.get_by_label("Events (comma-separated; empty = all)").fill("payment.*")
        async with page.page.expect_navigation():
            await page.page.get_by_role("button", name="Save endpoint").click()
        secret = await page.page.get_by_label("Signing secret").inner_text()
        assert secret.startswith("whsec_")

        await paid_order(merchant, 1200)

        def first_attempt() -> list[Any]:
            return [r for r in received if b'"payment.succeeded"' in r[1]]

        [(first_headers, _)] = await wait_for(first_attempt, timeout=30)

        # the page refreshes its delivery log by itself: the failure shows without a reload
        row = page.page.locator("#deliveries tr[data-delivery]").filter(
            has_text="payment.succeeded"
        )
        await row.locator("td.answer", has_text="500").wait_for(timeout=30_000)
        assert await row.get_attribute("class") in ("retrying", "failed")
        await shot(page, shots, "webhook-failed")

        answer["status"] = 200
        async with page.page.expect_navigation():
            await row.get_by_role("button", name="Retry").click()
        assert "Sending again." in await page.page.get_by_role("status").inner_text()
        row = page.page.locator("#deliveries tr[data-delivery]").filter(
            has_text="payment.succeeded"
        )
        navigations = len([u for u in page.requests if urlsplit(u).path.endswith("/webhooks")])
        started = time.monotonic()
        while await row.get_attribute("class") != "succeeded":
            assert time.monotonic() - started < 30, await row.inner_html()
            await page.page.wait_for_timeout(250)
        # turned green by the page's own refresh, not by loading the page again
        assert navigations == len(
            [u for u in page.requests if urlsplit(u).path.endswith("/webhooks")]
        )
        retried = [r for r in received if b'"payment.succeeded"' in r[1]]
        assert len(retried) >= 2 and retried[-1][0]["webhook-id"] == first_headers["webhook-id"]
        await shot(page, shots, "webhook-retried")
    only_our_own_host(page, suite)


async def merchant_with_everything(http: httpx.AsyncClient, tag: str) -> dict[str, Any]:
    """A merchant with a paid order, an authorisation, a webhook endpoint, deliveries, a key."""
    merchant = await sign_up(http, email=f"{tag}-{uuid.uuid4().hex[:8]}@example.com")
    await merchant.save_card("pm_card_visa")
    url = f"http://127.0.0.1:9/{tag}-{uuid.uuid4().hex[:8]}"  # nobody listens: deliveries fail
    put = await http.put(
        "/webhooks/settings",
        json={"url": url, "enabled_events": ["payment.*"]},
        headers=merchant.headers,
    )
    assert put.status_code == 200, put.text
    order = await paid_order(merchant, 1100)
    held = await authorise(merchant, 700)
    key = await http.post("/api-keys", json={"name": f"{tag} backend"}, headers=merchant.headers)
    assert key.status_code == 201, key.text
    await ledger_has(merchant, order["payment"]["payment_id"])

    async def deliveries() -> list[Any]:
        r = await http.get("/webhooks", headers=merchant.headers)
        return r.json()["items"] if r.status_code == 200 else []

    logged = await wait_for(deliveries, timeout=30)
    me = (await http.get("/users/me", headers=merchant.headers)).json()
    return {
        "customer": merchant,
        "markers": {
            merchant.email,
            me["id"],
            order["payment"]["payment_id"],
            held["id"],
            url,
            key.json()["prefix"],
            logged[0]["id"],
        },
        "user_id": me["id"],
        "held": held["id"],
        "delivery": logged[0]["id"],
    }


async def test_each_merchant_sees_only_their_own_data_on_every_dashboard_page(
    suite: Suite, services: Any, http: httpx.AsyncClient, page: RecordedPage, shots: Path
) -> None:
    mine = await merchant_with_everything(http, "alpha")
    theirs = await merchant_with_everything(http, "beta")
    me: Customer = mine["customer"]
    await sign_in_page(page, dashboard(suite), me.email, PASSWORD)

    seen = ""
    for path in DASHBOARD_PAGES:
        response = await page.page.goto(dashboard(suite) + path)
        assert response is not None and response.status == 200, path
        html = await page.page.content()
        leaked = sorted(m for m in theirs["markers"] if m in html)
        assert leaked == [], (path, leaked)
        seen += html
        await shot(page, shots, "page" + re.sub(r"\W+", "-", path).rstrip("-"))
    # the delivery log's fragment (what the webhooks page refreshes itself from), as it fetches it
    fragment = await page.page.request.get(dashboard(suite) + "/webhooks/deliveries")
    assert fragment.status == 200
    html = await fragment.text()
    assert sorted(m for m in theirs["markers"] if m in html) == []
    assert mine["delivery"] in html
    # (the pages never print the merchant's own email or user id: those are checked as leaks)
    missing = sorted(m for m in mine["markers"] - {me.email, mine["user_id"]} if m not in seen)
    assert missing == []  # the pages really show the merchant's own data
    await page.page.goto(dashboard(suite) + "/")
    assert await page.page.locator('[data-balance="usd"] .available').inner_text() != ""

    # the other's payment and delivery cannot be acted on, even with a valid form of ours
    csrf = await page.page.locator("input[name=csrf_token]").first.get_attribute("value")
    for path, done in (
        (f"/payments/{theirs['held']}/capture", "Not done"),
        (f"/payments/{theirs['held']}/cancel", "Not done"),
        (f"/webhooks/{theirs['delivery']}/retry", "Not retried"),
    ):
        answer = await page.page.request.post(dashboard(suite) + path, form={"csrf_token": csrf})
        assert answer.ok and done in await answer.text(), path
    other: Customer = theirs["customer"]
    still = (await http.get(f"/payments/{theirs['held']}", headers=other.headers)).json()
    assert still["status"] == "requires_capture"
    only_our_own_host(page, suite)
