"""Every service's Swagger UI in Chromium, offline: its operations render, nothing is fetched
from another host, nothing logs an error; the gateway's merged docs offer both sign-in schemes;
and Schemathesis with every check over the merged spec of all nine (the e2e suite runs six)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from paygate_common.services import SERVICES
from paygate_devstack import TOPICS
from paygate_devstack.browser import RecordedPage, browser_page, shot
from paygate_devstack.components import Kafka
from paygate_devstack.process import free_port
from paygate_devstack.schemathesis_kit import (
    FUZZ_ADMIN_EMAIL,
    FUZZ_ADMIN_PASSWORD,
    customer_headers,
    fuzz_openapi,
    isolated_stack,
    sign_in_headers,
)

# nine services start (migrations first) before the first page: generous on a busy machine
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]

NAMES = [spec.name for spec in SERVICES]


@pytest.fixture(scope="module")
def docs_stack(paygate_stack: Any, devstack_dir: Path) -> Iterator[dict[str, Any]]:
    """All nine on free ports with a broker of their own: the e2e suite's services keep the
    reserved ports, and nothing these consume or publish reaches another test's services."""
    kafka = Kafka(free_port(), log_path=devstack_dir / "logs" / "kafka-docs.log", topics=TOPICS)
    kafka.start()
    try:
        # the gateway last: its merged document is fetched from the others
        others = [n for n in NAMES if n not in ("user", "gateway")]
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
            # the fuzz run below is hundreds of requests from one address in a few minutes
            **{f"GATEWAY_RATE_LIMIT_{k}": "100000/second" for k in ("ANON", "USER", "AUTH")},
            "USER_SERVICE_SIGNIN_MAX_FAILURES_PER_IP": "100000",
            "PAYMENT_SERVICE_CONNECTOR": "sandbox",
        }
        with isolated_stack(paygate_stack, *others, "gateway", env=env) as procs:
            yield procs
    finally:
        kafka.stop()


@pytest.fixture(scope="module")
async def page(artifacts_dir: Path) -> AsyncIterator[RecordedPage]:
    # one browser for the module; each test starts from a clean slate of records
    async with browser_page(artifacts_dir / "docs") as recorded:
        yield recorded


async def _open_docs(page: RecordedPage, url: str) -> None:
    page.requests.clear()
    page.console_errors.clear()
    await page.page.goto(f"{url}/docs", wait_until="networkidle")
    # Swagger UI renders after fetching and parsing the document: slow on a busy machine
    await page.page.wait_for_selector(".opblock", timeout=90_000)


def test_the_registry_names_nine_services() -> None:
    assert len(NAMES) == 9, NAMES


@pytest.mark.parametrize("name", NAMES)
async def test_docs_render_offline_on_the_services_own_port(
    name: str, docs_stack: dict[str, Any], page: RecordedPage, artifacts_dir: Path
) -> None:
    base = docs_stack[name].url
    await _open_docs(page, base)
    operations = await page.page.locator(".opblock").count()
    title = (await page.page.locator(".information-container .title").inner_text()).strip()
    await shot(page, artifacts_dir / "docs", f"docs-{name}")
    # the operations of the service's own document, not Swagger's demo or an empty page
    assert operations >= 2, (name, operations)
    assert title and "Swagger Petstore" not in title, title
    own = urlsplit(base).netloc
    assert page.hosts() == {own}, (name, sorted(page.requests))
    assert any(u.endswith("/openapi.json") for u in page.requests), page.requests
    assert not page.console_errors, (name, page.console_errors)


async def test_the_gateways_authorize_dialog_offers_the_password_flow_and_api_keys(
    docs_stack: dict[str, Any], page: RecordedPage, artifacts_dir: Path
) -> None:
    await _open_docs(page, docs_stack["gateway"].url)
    # the merged document: every service's public routes appear (one tag each at least)
    tags = await page.page.locator(".opblock-tag").all_inner_texts()
    assert len(tags) >= 8, tags
    await page.page.locator(".auth-wrapper .authorize").first.click()
    dialog = page.page.locator(".modal-ux")
    await dialog.wait_for(timeout=10_000)
    text = " ".join((await dialog.inner_text()).split())  # Swagger UI pads names with &nbsp;
    await shot(page, artifacts_dir / "docs", "docs-gateway-authorize")
    assert "OAuth2PasswordBearer (OAuth2, password)" in text, text
    assert "/api/v1/auth/token" in text, text  # the gateway's public path, not /auth/token
    assert "apiKeyAuth (http, Bearer)" in text, text
    assert "bearerAuth (http, Bearer)" in text, text

    # and the password flow signs in through the gateway (it posted to /auth/token: a 404)
    oauth = dialog.locator(".auth-container", has_text="OAuth2PasswordBearer")
    await oauth.locator("#oauth_username").fill(FUZZ_ADMIN_EMAIL)
    await oauth.locator("#oauth_password").fill(FUZZ_ADMIN_PASSWORD)
    async with page.page.expect_response(lambda r: "/auth/token" in r.url) as answer:
        await oauth.get_by_role("button", name="Apply given OAuth2 credentials").click()
    token = await answer.value
    assert urlsplit(token.url).path == "/api/v1/auth/token", token.url
    assert token.status == 200, await token.text()
    # Swagger holds the token: the form's button turns into Logout
    await oauth.get_by_role("button", name="Remove authorization").wait_for(timeout=10_000)
    assert not page.console_errors, page.console_errors


async def test_every_check_passes_over_the_merged_spec_of_all_nine(
    docs_stack: dict[str, Any],
) -> None:
    gateway = docs_stack["gateway"].url
    customer = customer_headers(f"{gateway}/api/v1")
    operator = sign_in_headers(f"{gateway}/api/v1")
    # `/admin/analytics` relays transaction-service's `/internal/analytics`: fuzzed wherever the
    # ledger serves it (the route lands this wave)
    ledger = httpx.get(f"{docs_stack['transaction'].url}/openapi.json", timeout=30).json()
    has_analytics = "/internal/analytics" in ledger["paths"]

    def run() -> Any:
        return fuzz_openapi(
            gateway,
            headers_for=lambda case: operator if "/api/v1/admin/" in case.path else customer,
            max_examples=3,
            # Providers' callbacks are verified by their signatures, which a fuzzer cannot make
            include=lambda op: (
                op.path
                not in tuple(f"/api/v1/webhooks/{p}" for p in ("stripe", "paypal", "sslcommerz"))
                and (has_analytics or op.path != "/api/v1/admin/analytics")
            ),
        )

    report = await asyncio.to_thread(run)
    assert report.operations >= 60, report.summary()
    assert not report.failures, report.summary()
    assert any(200 <= s < 300 for s in report.statuses), report.summary()
