"""Helpers for the console and dashboard tests: admin-service (and audit-service) on the suite,
a browser signed in through the gateway, and waits on what the services report."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
from e2e_support import Customer, Suite, payment_settled

from paygate_devstack.browser import RecordedPage
from paygate_devstack.events_testing import wait_for
from paygate_devstack.pytest_plugin import ServiceProcess

# What /admin/health watches here: the suite's processes (exchange-rate-service is not started
# by the e2e suite, and would keep the overall status red).
WATCHED = ["user", "transaction", "order", "payment", "notification", "audit", "admin"]
# admin-service's own settings on the suite (audit-service needs none beyond the suite's)
ADMIN_ENV = {
    "ADMIN_SERVICE_HEALTH_SERVICES": json.dumps(WATCHED),
    "ADMIN_SERVICE_HEALTH_TIMEOUT_SECONDS": "1.5",
}


@contextmanager
def suite_service(
    suite: Suite, name: str, extra: dict[str, str] | None = None
) -> Iterator[ServiceProcess]:
    """A service the suite does not start (audit, admin) on the suite's database, broker and
    Redis, on its reserved port (the gateway routes `/admin`, `/dashboard` and `/api/v1/admin/…`
    there); stopped on exit unless the suite itself runs it."""
    if name in suite.procs:
        yield suite.procs[name]
        return
    env = {
        k: suite.procs["user"].env[k]
        for k in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")
    }
    proc = suite.stack.start_service(name, {**env, **(extra or {})})
    try:
        yield proc
    finally:
        proc.stop()
        if proc in suite.stack.started:
            suite.stack.started.remove(proc)


def gateway(suite: Suite) -> str:
    return suite.procs["gateway"].url


def only_our_own_host(page: RecordedPage, suite: Suite) -> None:
    """The page logged no error and fetched nothing from another host than the gateway."""
    assert page.console_errors == []
    assert page.hosts() == {urlsplit(gateway(suite)).netloc}


async def sign_in_page(page: RecordedPage, base: str, email: str, password: str) -> None:
    """Sign in with the keyboard only: the form must be usable without a mouse."""
    await page.page.goto(f"{base}/login")
    email_box = page.page.get_by_label("Email")
    await email_box.focus()  # autofocus does this for a person; headless focus is not assured
    await page.page.keyboard.type(email)
    await page.page.keyboard.press("Tab")
    assert await page.page.get_by_label("Password").evaluate("e => e === document.activeElement")
    await page.page.keyboard.type(password)
    async with page.page.expect_navigation():
        await page.page.keyboard.press("Enter")


async def sign_out_page(page: RecordedPage) -> None:
    async with page.page.expect_navigation():
        await page.page.get_by_role("button", name="Sign out").click()


async def authorise(owner: Customer, amount: int) -> dict[str, Any]:
    """A manual-capture payment on the owner's saved card, once it is `requires_capture`."""
    r = await owner.http.post(
        "/payments",
        json={"amount": amount, "currency": "usd", "capture_method": "manual"},
        headers=owner.headers,
    )
    assert r.status_code in (201, 202), r.text
    return await payment_settled(owner, r.json()["id"], {"requires_capture"})


async def paid_order(owner: Customer, amount: int) -> dict[str, Any]:
    """An order paid with the owner's saved card; returns the order with its payment."""
    r = await owner.order(amount=amount)
    assert r.status_code == 201, r.text
    order_id = r.json()["id"]
    assert await owner.wait_status(order_id, {"paid", "failed"}, timeout=40) == "paid"
    body: dict[str, Any] = (
        await owner.http.get(f"/orders/{order_id}", headers=owner.headers)
    ).json()
    return body


async def ledger_has(owner: Customer, payment_id: str, timeout: float = 20) -> dict[str, Any]:
    """The payment as transaction-service's history shows it (once it has posted it)."""

    async def posted() -> dict[str, Any] | None:
        r = await owner.http.get(f"/transactions/{payment_id}", headers=owner.headers)
        body = r.json() if r.status_code == 200 else {}
        return body if body.get("amount_captured") else None

    return dict(await wait_for(posted, timeout=timeout))


async def applied_config(
    http: httpx.AsyncClient, admin: Customer, key: str, version: int, timeout: float = 20
) -> dict[str, Any]:
    """transaction-service's own view of `key`, once it applies `version` (or newer)."""

    async def applied() -> dict[str, Any] | None:
        r = await http.get("/admin/ledger/config", headers=admin.headers)
        if r.status_code != 200:
            return None
        item = next((i for i in r.json()["items"] if i["key"] == key), None)
        return item if item and item["config_version"] >= version else None

    return dict(await wait_for(applied, timeout=timeout, interval=0.05))
