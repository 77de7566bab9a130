"""The operator console in Debian's Chromium, through the gateway, on the running suite: charts
drawn from transaction-service's analytics, payments captured and refunded as the operator,
the audit chain verified, a user disabled, the fee schedule changed for the next payment, a
dead letter replayed; customers are refused everywhere; nothing leaves for another host. And
the configuration's and health's acceptance through the API."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from admin_support import (
    applied_config,
    authorise,
    gateway,
    ledger_has,
    only_our_own_host,
    paid_order,
    sign_in_page,
    sign_out_page,
)
from e2e_support import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    PASSWORD,
    Customer,
    Suite,
    paying_customer,
    payment_settled,
    sign_in,
    sign_up,
)

from paygate_devstack.browser import RecordedPage, shot
from paygate_devstack.events_testing import wait_for

REFUSED_LOAD = "Failed to load resource: the server responded with a status of 403 (Forbidden)"

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture
async def admin(http: httpx.AsyncClient, services: Any) -> Customer:
    return await sign_in(http, ADMIN_EMAIL, ADMIN_PASSWORD)


@pytest.fixture
def shots(artifacts_dir: Path) -> Path:
    return artifacts_dir / "admin-console"


def console(suite: Suite) -> str:
    return gateway(suite) + "/admin"


async def chart_datasets(page: RecordedPage, canvas_id: str) -> list[dict[str, Any]]:
    """What Chart.js holds for that canvas: [{label, data}] (read from the page itself)."""
    datasets: list[dict[str, Any]] = await page.page.evaluate(
        """(id) => {
            const chart = window.Chart && window.Chart.getChart(document.getElementById(id));
            return chart ? chart.data.datasets.map((d) => ({label: d.label, data: d.data})) : [];
        }""",
        canvas_id,
    )
    return datasets


async def row_status(page: RecordedPage, url: str, payment_id: str, wanted: str) -> None:
    """Reload `url` until the payment's row shows `wanted` (payment events are asynchronous)."""

    async def shows() -> bool:
        await page.page.goto(url)
        cell = page.page.locator(f'tr[data-payment="{payment_id}"] td.status')
        return await cell.count() == 1 and (await cell.inner_text()) == wanted

    await wait_for(shows, timeout=40, interval=0.5)


async def test_an_operator_charts_finds_captures_refunds_and_verifies_the_trail(
    suite: Suite,
    services: Any,
    http: httpx.AsyncClient,
    admin: Customer,
    page: RecordedPage,
    shots: Path,
) -> None:
    merchant = await paying_customer(http)
    order = await paid_order(merchant, 2300)
    await ledger_has(merchant, order["payment"]["payment_id"])
    authorised = await authorise(merchant, 5000)

    # the API the chart is drawn from: the ledger's figures, typed
    r = await http.get("/admin/analytics", headers=admin.headers)
    assert r.status_code == 200, r.text
    usd = [i for i in r.json()["items"] if i["currency"] == "usd" and i["provider"] == "stripe"]
    assert sum(i["volume"] for i in usd) >= 2300 and all(i["success_rate"] is not None for i in usd)

    base = console(suite)
    await sign_in_page(page, base, ADMIN_EMAIL, ADMIN_PASSWORD)
    await page.page.get_by_role("heading", name="Overview").wait_for()
    await page.page.locator("#volume-chart[data-points]").wait_for(state="attached")
    volume = await chart_datasets(page, "volume-chart")
    assert volume and any(d["label"] == "USD" and sum(d["data"]) >= 2300 for d in volume)
    success = await chart_datasets(page, "success-chart")
    assert success and any(v is not None and 0 < v <= 100 for v in success[0]["data"])
    assert await chart_datasets(page, "refunds-chart")
    await shot(page, shots, "overview")

    # capture less than authorised, as the operator, after a confirmation
    search = f"{base}/payments?q={authorised['id']}"
    await page.page.get_by_role("link", name="Payments").click()
    await page.page.get_by_label("Payment id or customer email").fill(authorised["id"])
    async with page.page.expect_navigation():
        await page.page.get_by_role("button", name="Search").click()
    row = page.page.locator(f'tr[data-payment="{authorised["id"]}"]')
    assert await row.locator("td.status").inner_text() == "requires_capture"
    dialogs: list[str] = []
    page.page.on("dialog", lambda d: dialogs.append(d.message))
    await row.get_by_label("Capture amount").fill("3000")
    async with page.page.expect_navigation():
        await row.get_by_role("button", name="Capture").click()
    assert dialogs == ["Capture this payment?"]
    assert "Captured." in await page.page.get_by_role("status").inner_text()
    await row_status(page, search, authorised["id"], "succeeded")
    captured = await payment_settled(merchant, authorised["id"], {"succeeded"})
    assert captured["amount_captured"] == 3000

    row = page.page.locator(f'tr[data-payment="{authorised["id"]}"]')
    await row.get_by_label("Refund amount").fill("1000")
    async with page.page.expect_navigation():
        await row.get_by_role("button", name="Refund").click()
    assert "Refund requested." in await page.page.get_by_role("status").inner_text()
    await row_status(page, search, authorised["id"], "partially_refunded")
    await shot(page, shots, "payment-refunded")

    # by the owner's email: both of the merchant's payments, from the ledger's history
    await wait_for(lambda: ledger_has(merchant, authorised["id"]), timeout=20)
    await page.page.goto(f"{base}/payments?q={quote(merchant.email)}")
    listed = await page.page.locator("tr[data-payment]").evaluate_all(
        "rows => rows.map(r => r.dataset.payment)"
    )
    assert set(listed) == {order["payment"]["payment_id"], authorised["id"]}

    # the trail names the operator for the capture; the chain verifies
    admin_id = (await http.get("/users/me", headers=admin.headers)).json()["id"]

    async def capture_recorded() -> bool:
        await page.page.goto(
            f"{base}/audit?action=payment.capture_requested&entity_id={authorised['id']}"
        )
        return await page.page.locator('tr[data-action="payment.capture_requested"]').count() > 0

    await wait_for(capture_recorded, timeout=30, interval=0.5)
    record = page.page.locator('tr[data-action="payment.capture_requested"]').first
    assert admin_id in await record.inner_text()
    async with page.page.expect_navigation():
        await page.page.get_by_role("button", name="Verify the chain").click()
    verdict = page.page.locator("#verification")
    assert await verdict.get_attribute("data-ok") == "true", await verdict.inner_text()
    assert "Chain intact" in await verdict.inner_text()
    await shot(page, shots, "audit-verified")

    # the health page refreshes itself
    await page.page.get_by_role("link", name="Health").click()
    await page.page.locator('tr[data-service="transaction"] td.status').wait_for()
    fetched = len([u for u in page.requests if u.endswith("/health.json")])
    await wait_for(
        lambda: len([u for u in page.requests if u.endswith("/health.json")]) > fetched, timeout=20
    )
    assert await page.page.locator('tr[data-service="transaction"] td.status').inner_text() == (
        "ready"
    )
    await shot(page, shots, "health")
    only_our_own_host(page, suite)


async def test_a_disabled_user_cannot_sign_in_and_a_new_fee_applies_to_the_next_payment(
    suite: Suite,
    services: Any,
    http: httpx.AsyncClient,
    admin: Customer,
    page: RecordedPage,
    shots: Path,
) -> None:
    victim = await sign_up(http)
    merchant = await paying_customer(http)
    base = console(suite)
    await sign_in_page(page, base, ADMIN_EMAIL, ADMIN_PASSWORD)

    await page.page.get_by_role("link", name="Users").click()
    await page.page.get_by_label("Email contains").fill(victim.email)
    await page.page.keyboard.press("Enter")
    row = page.page.locator(f'tr[data-user="{victim.email}"]')
    await row.wait_for()
    async with page.page.expect_navigation():
        await row.get_by_role("button", name="Disable").click()
    assert "Saved." in await page.page.get_by_role("status").inner_text()
    await page.page.goto(f"{base}/users?q={quote(victim.email)}")
    assert await row.get_attribute("class") == "disabled"
    refused = await http.post("/auth/signin", json={"email": victim.email, "password": PASSWORD})
    assert refused.status_code == 403 and refused.json()["code"] == "account_disabled"
    await shot(page, shots, "user-disabled")

    # the disabled user, at the dashboard's own sign-in page
    await sign_out_page(page)
    await sign_in_page(page, gateway(suite) + "/dashboard", victim.email, PASSWORD)
    assert "This account is disabled." in await page.page.get_by_role("alert").inner_text()
    # the refusal is a 403 page, which Chromium logs as a failed load: that one is expected
    assert page.console_errors == [REFUSED_LOAD]
    page.console_errors.clear()
    await sign_in_page(page, base, ADMIN_EMAIL, ADMIN_PASSWORD)

    before = (await http.get("/admin/config/fees", headers=admin.headers)).json()
    try:
        await page.page.get_by_role("link", name="Configuration").click()
        await page.page.get_by_role("link", name="fees").click()
        await page.page.get_by_label("Value (JSON)").fill(
            '{"rules": [{"basis_points": 500, "fixed": 7}]}'
        )
        await page.page.get_by_label("Reason").fill("e2e: a dearer schedule")
        async with page.page.expect_navigation():
            await page.page.get_by_role("button", name="Save new version").click()
        status = await page.page.get_by_role("status").inner_text()
        assert "Saved as version" in status, status
        version = int(status.split("version ")[1].rstrip("."))
        await applied_config(http, admin, "fees", version)
        await shot(page, shots, "fees-saved")

        order = await paid_order(merchant, 2000)
        posted = await ledger_has(merchant, order["payment"]["payment_id"])
        assert posted["fee"] == 2000 * 500 // 10_000 + 7
        # and the merchant sees it on their dashboard's history
        await sign_out_page(page)
        await sign_in_page(page, gateway(suite) + "/dashboard", merchant.email, PASSWORD)
        fee = page.page.locator(f'tr[data-transaction="{posted["id"]}"] td.fee')
        assert await fee.inner_text() == str(2000 * 500 // 10_000 + 7)
        await shot(page, shots, "dashboard-new-fee")
    finally:
        restored = await http.put(
            "/admin/config/fees",
            json={"value": before["value"], "reason": "e2e: the schedule back"},
            headers=admin.headers,
        )
        assert restored.status_code == 200, restored.text
        await applied_config(http, admin, "fees", restored.json()["version"])
    only_our_own_host(page, suite)


async def test_a_dead_letter_is_replayed_from_the_console(
    suite: Suite,
    services: Any,
    http: httpx.AsyncClient,
    admin: Customer,
    page: RecordedPage,
    shots: Path,
) -> None:
    async def dead_letters() -> list[dict[str, Any]]:
        r = await http.get("/admin/notifications/dead-letters", headers=admin.headers)
        assert r.status_code == 200, r.text
        body = r.json()
        return list(body.get("items", body) if isinstance(body, dict) else body)

    known = {d["id"] for d in await dead_letters()}
    buyer = await paying_customer(http)
    smtp = suite.stack.smtp
    smtp.stop()  # the receipt's email cannot be sent: its attempts run out
    try:
        await paid_order(buyer, 1500)

        async def new_dead_letter() -> list[dict[str, Any]]:
            return [d for d in await dead_letters() if d["id"] not in known]

        [dead] = await wait_for(new_dead_letter, timeout=40, interval=0.5)
    finally:
        smtp.start()

    await sign_in_page(page, console(suite), ADMIN_EMAIL, ADMIN_PASSWORD)
    await page.page.get_by_role("link", name="Dead letters").click()
    row = page.page.locator("tr").filter(has_text=dead["id"])
    await row.wait_for()
    await shot(page, shots, "dead-letters")
    async with page.page.expect_navigation():
        await row.get_by_role("button", name="Replay").click()
    assert "Replayed." in await page.page.get_by_role("status").inner_text()

    def receipt_sent() -> bool:
        return any(buyer.email in str(m.get("To", "")) for m in smtp.messages())

    await wait_for(receipt_sent, timeout=30)
    await page.page.reload()
    assert await page.page.locator("tr").filter(has_text=dead["id"]).count() == 0
    only_our_own_host(page, suite)


CONSOLE_PAGES = (
    "/",
    "/payments",
    "/users",
    "/config",
    "/config/fees",
    "/dead-letters",
    "/audit",
    "/audit/verify",
    "/health",
    "/health.json",
)


async def test_a_customer_gets_403_on_every_admin_page_and_api(
    suite: Suite, services: Any, http: httpx.AsyncClient, page: RecordedPage
) -> None:
    customer = await sign_up(http)
    await sign_in_page(page, console(suite), customer.email, PASSWORD)
    for path in CONSOLE_PAGES:
        response = await page.page.goto(console(suite) + path)
        assert response is not None and response.status == 403, path
    # the forms too, even with the customer's own (valid) session and CSRF token
    csrf = await page.page.evaluate(
        "() => document.querySelector('input[name=csrf_token]')?.value || ''"
    )
    for path, form in (
        (f"/users/{uuid.uuid4()}", {"disabled": "true"}),
        ("/config/fees", {"value": "{}"}),
        (f"/payments/{uuid.uuid4()}/refunds", {}),
        (f"/dead-letters/{uuid.uuid4()}/replay", {}),
    ):
        answer = await page.page.request.post(
            console(suite) + path, form={**form, "csrf_token": csrf}, max_redirects=0
        )
        assert answer.status == 403, path

    for method, path, body in (
        ("GET", "/admin/users", None),
        ("PATCH", f"/admin/users/{uuid.uuid4()}", {"disabled": True}),
        ("GET", "/admin/config", None),
        ("GET", "/admin/config/fees", None),
        ("PUT", "/admin/config/fees", {"value": {"rules": [{"basis_points": 0}]}}),
        ("GET", "/admin/config/fees/history", None),
        ("GET", "/admin/analytics", None),
        ("GET", "/admin/health", None),
        ("GET", "/admin/audit/events", None),
        ("GET", "/admin/audit/verify", None),
        ("GET", "/admin/notifications/dead-letters", None),
        ("GET", "/admin/ledger/config", None),
    ):
        r = await http.request(method, path, json=body, headers=customer.headers)
        assert r.status_code == 403, (method, path, r.text)
    # each refused page is logged by Chromium as a failed load, and nothing else is
    assert set(page.console_errors) == {REFUSED_LOAD}
    assert len(page.console_errors) == len(CONSOLE_PAGES) + 1  # + the landing page after sign-in
    page.console_errors.clear()
    only_our_own_host(page, suite)


async def test_a_config_change_reaches_the_ledger_within_2_s_is_validated_and_rolls_back(
    suite: Suite, services: Any, http: httpx.AsyncClient, admin: Customer
) -> None:
    # nok: a currency no other test pays in, so the limits changed here bind nobody else
    before = (await http.get("/admin/config/limits", headers=admin.headers)).json()
    first = {"defaults": [{"currency": "nok", "daily": 10_000}], "overrides": {}}
    second = {"defaults": [{"currency": "nok", "daily": 20_000}], "overrides": {}}
    try:
        started = time.monotonic()
        saved = await http.put(
            "/admin/config/limits",
            json={"value": first, "reason": "e2e: propagation"},
            headers=admin.headers,
        )
        assert saved.status_code == 200, saved.text
        applied = await applied_config(http, admin, "limits", saved.json()["version"], timeout=2)
        assert time.monotonic() - started < 2.0
        # admin-service stores the value as its schema reads it (unset limits as null)
        stored = saved.json()["value"]
        assert stored["defaults"][0]["daily"] == 10_000
        assert applied["value"] == stored

        invalid = await http.put(
            "/admin/config/limits",
            json={"value": {"defaults": [{"currency": "nok", "daily": -5}]}},
            headers=admin.headers,
        )
        assert invalid.status_code == 422
        assert invalid.headers["content-type"].startswith("application/problem+json")
        problem = invalid.json()
        assert problem["code"] == "config_invalid"
        assert any(e["loc"][-1] == "daily" for e in problem["errors"]), problem

        newer = await http.put(
            "/admin/config/limits", json={"value": second}, headers=admin.headers
        )
        assert newer.status_code == 200, newer.text
        await applied_config(http, admin, "limits", newer.json()["version"])
        back = await http.post(
            "/admin/config/limits/rollback",
            json={"version": saved.json()["version"]},
            headers=admin.headers,
        )
        assert back.status_code in (200, 201), back.text
        assert (
            back.json()["value"] == stored
            and back.json()["rolled_back_to"] == (saved.json()["version"])
        )
        restored = await applied_config(http, admin, "limits", back.json()["version"])
        assert restored["value"] == stored
        history = (await http.get("/admin/config/limits/history", headers=admin.headers)).json()
        assert [v["version"] for v in history["items"]][:3] == [
            back.json()["version"],
            newer.json()["version"],
            saved.json()["version"],
        ]
    finally:
        await http.put(
            "/admin/config/limits",
            json={"value": before["value"], "reason": "e2e: as before"},
            headers=admin.headers,
        )


async def test_health_turns_a_hung_service_red_within_10_s_and_green_after(
    suite: Suite, services: Any, http: httpx.AsyncClient, admin: Customer
) -> None:
    async def status_of(name: str) -> tuple[str, str]:
        r = await http.get("/admin/health", headers=admin.headers)
        assert r.status_code == 200, r.text
        body = r.json()
        service = next(s for s in body["services"] if s["name"] == name)
        return body["status"], service["status"]

    await wait_for(lambda: _is(status_of("order"), "ready"), timeout=30)
    order_service = suite.procs["order"]
    order_service.pause()  # SIGSTOP: the port accepts connections, nothing answers
    try:
        stopped = time.monotonic()
        await wait_for(lambda: _is(status_of("order"), "ready", negate=True), timeout=10)
        assert time.monotonic() - stopped < 10
        overall, _ = await status_of("order")
        assert overall == "down"
    finally:
        order_service.resume()
    await wait_for(lambda: _is(status_of("order"), "ready"), timeout=20)


async def _is(probe: Any, wanted: str, *, negate: bool = False) -> bool:
    _, status = await probe
    return (status != wanted) if negate else (status == wanted)
