"""The operator console in a real browser (Debian's Chromium): sign in, edit configuration,
roll it back, watch suite health; customers are turned away; nothing leaves for another host."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from paygate_devstack.browser import RecordedPage, browser_page, shot
from paygate_devstack.process import free_port

ADMIN_EMAIL = "ops@example.com"
ADMIN_PASSWORD = "operator-password-123"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def console_stack(paygate_stack: Any, admin_broker: Any) -> Iterator[dict[str, Any]]:
    """user-service and admin-service on ports of their own, stopped after the module (the
    stack's reserved ports stay free for the next test that starts these services)."""
    env = {
        # its fee edits go to a broker of the admin tests' own, not to other tests' services
        "KAFKA_BOOTSTRAP_SERVERS": admin_broker.bootstrap,
        "USER_SERVICE_BOOTSTRAP_ADMIN_EMAIL": ADMIN_EMAIL,
        "USER_SERVICE_BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    user = paygate_stack.start_service("user", env, port=free_port())
    admin_env = {
        "KAFKA_BOOTSTRAP_SERVERS": admin_broker.bootstrap,
        "JWKS_URL": f"{user.url}/.well-known/jwks.json",
        "PAYGATE_SERVICE_URLS": json.dumps({**paygate_stack.urls, "user": user.url}),
    }
    admin = paygate_stack.start_service("admin", admin_env, port=free_port())
    try:
        yield {"user": user, "admin": admin, "console": f"{admin.url}/console"}
    finally:
        for proc in (admin, user):
            proc.stop()
            if proc in paygate_stack.started:
                paygate_stack.started.remove(proc)


@pytest.fixture
async def page(artifacts_dir: Path) -> AsyncIterator[RecordedPage]:
    async with browser_page(artifacts_dir / "console") as recorded:
        yield recorded


async def sign_in(page: RecordedPage, console: str, email: str, password: str) -> None:
    await page.page.goto(f"{console}/")
    assert page.page.url.endswith("/console/login")
    await page.page.get_by_label("Email").fill(email)
    await page.page.get_by_label("Password").fill(password)
    await page.page.get_by_role("button", name="Sign in").click()
    await page.page.wait_for_load_state()


async def test_an_operator_edits_the_fee_schedule_and_rolls_it_back(
    console_stack: dict[str, Any], page: RecordedPage, artifacts_dir: Path
) -> None:
    console = console_stack["console"]
    await sign_in(page, console, ADMIN_EMAIL, ADMIN_PASSWORD)
    await page.page.get_by_role("heading", name="Overview").wait_for()
    await shot(page, artifacts_dir / "console", "overview")

    await page.page.get_by_role("link", name="Configuration").click()
    await page.page.get_by_role("link", name="fees").click()
    editor = page.page.get_by_label("Value (JSON)")
    await editor.fill('{"rules": [{"basis_points": 175, "fixed": 20}]}')
    await page.page.get_by_label("Reason").fill("browser test pricing")
    await page.page.get_by_role("button", name="Save new version").click()
    await page.page.get_by_role("status").filter(has_text="Saved as version").wait_for()
    saved_version = int(
        (await page.page.get_by_role("status").inner_text()).split("version ")[1].rstrip(".")
    )
    assert "175" in await editor.input_value()

    await editor.fill('{"rules": [{"basis_points": -1}]}')
    await page.page.get_by_role("button", name="Save new version").click()
    alert = page.page.get_by_role("alert")
    await alert.wait_for()
    assert "basis_points" in await alert.inner_text()
    await shot(page, artifacts_dir / "console", "config-invalid")

    # a second version, then back to the first one from the history table
    await page.page.goto(f"{console}/config/fees")
    await page.page.get_by_label("Value (JSON)").fill('{"rules": [{"basis_points": 180}]}')
    await page.page.get_by_role("button", name="Save new version").click()
    await page.page.get_by_role("status").filter(has_text=f"version {saved_version + 1}").wait_for()
    row = page.page.locator("table tbody tr").filter(
        has=page.page.get_by_role("cell", name=str(saved_version), exact=True)
    )
    await row.get_by_role("button", name="Roll back to this").click()
    await (
        page.page.get_by_role("status")
        .filter(has_text=f"Rolled back to version {saved_version}")
        .wait_for()
    )
    restored = await page.page.get_by_label("Value (JSON)").input_value()
    assert '"basis_points": 175' in restored and '"fixed": 20' in restored
    await shot(page, artifacts_dir / "console", "config-rolled-back")

    assert page.console_errors == []
    assert page.hosts() == {urlsplit(console).netloc}


async def test_the_health_page_refreshes_itself(
    console_stack: dict[str, Any], page: RecordedPage, artifacts_dir: Path
) -> None:
    console = console_stack["console"]
    await sign_in(page, console, ADMIN_EMAIL, ADMIN_PASSWORD)
    await page.page.goto(f"{console}/health")
    user_row = page.page.locator('tr[data-service="user"] td.status')
    await user_row.wait_for()
    assert await user_row.inner_text() == "ready"
    fetched = len([u for u in page.requests if u.endswith("/health.json")])

    async def refreshed() -> bool:
        return len([u for u in page.requests if u.endswith("/health.json")]) > fetched

    from paygate_devstack.events_testing import wait_for

    await wait_for(refreshed, timeout=20)
    await shot(page, artifacts_dir / "console", "health")
    assert page.console_errors == []
    assert page.hosts() == {urlsplit(console).netloc}


async def test_a_customer_is_turned_away_from_every_console_page(
    console_stack: dict[str, Any], page: RecordedPage
) -> None:
    user_url = console_stack["user"].url
    email = f"cust-{uuid.uuid4().hex[:8]}@example.com"
    async with httpx.AsyncClient(base_url=user_url) as client:
        r = await client.post(
            "/auth/signup",
            json={"email": email, "password": "customer-password-1", "full_name": "Cus Tomer"},
        )
        assert r.status_code == 201, r.text
    console = console_stack["console"]
    await sign_in(page, console, email, "customer-password-1")
    for path in (
        "/",
        "/users",
        "/config",
        "/config/fees",
        "/dead-letters",
        "/health",
        "/health.json",
    ):
        response = await page.page.goto(f"{console}{path}")
        assert response is not None and response.status == 403, path
