"""The hosted checkout in Debian's Chromium through the gateway: card, 3-D Secure, the merchant's button."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from e2e_support import Customer, Suite, assert_nowhere, sign_up

from paygate_devstack.browser import RecordedPage, browser_page, shot
from paygate_devstack.process import free_port

pytestmark = pytest.mark.e2e

VISA = "4242424242424242"
THREE_D_SECURE = "4000002500003155"
SHOP = "https://shop.example.com/thanks"


def hosts_of(suite: Suite) -> tuple[str, str]:
    """(the gateway's host:port, the Stripe.js stand-in's host:port)."""
    return urlsplit(suite.procs["gateway"].url).netloc, urlsplit(suite.stack.stripe.api_base).netloc


async def checkout(
    buyer: Customer, *, return_url: str = SHOP, amount: int = 4200, **extra: Any
) -> dict[str, Any]:
    """What a merchant's backend does: a payment the customer pays on paygate's page."""
    r = await buyer.http.post(
        "/payments",
        json={
            "amount": amount,
            "currency": "usd",
            "checkout": True,
            "return_url": return_url,
            "description": "A very good bicycle bell",
            **extra,
        },
        headers=buyer.headers,
    )
    assert r.status_code == 202, r.text
    body = dict(r.json())
    assert body["status"] == "requires_action"
    return body


async def payment_of(buyer: Customer, payment_id: str) -> dict[str, Any]:
    r = await buyer.http.get(f"/payments/{payment_id}", headers=buyer.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def fill_card(frame: Any, number: str) -> None:
    """Type a card into the Stripe.js card element (localstripe's stand-in draws plain inputs)."""
    for field, value in (
        ("number", number),
        ("exp_month", "12"),
        ("exp_year", "34"),
        ("cvc", "123"),
        ("postal_code", "10115"),
    ):
        await frame.locator(f'#card-element input[placeholder="{field}"]').fill(value)


def assert_only_paygate_and_stripe(page: RecordedPage, suite: Suite, *others: str) -> None:
    gateway, stripe = hosts_of(suite)
    assert page.hosts() <= {gateway, stripe, *others}, page.hosts()
    # Both were really talked to: the page came from the gateway, Stripe.js from the stand-in.
    assert {gateway, stripe} <= page.hosts()
    assert not page.console_errors, page.console_errors


async def test_a_card_paid_on_the_hosted_page_succeeds_talking_only_to_paygate_and_stripe(
    suite: Suite, http: httpx.AsyncClient, artifacts_dir: Path
) -> None:
    buyer = await sign_up(http)
    created = await checkout(buyer)
    url = created["next_action"]["redirect_to_url"]["url"]
    assert url == f"{suite.procs['gateway'].url}/checkout/{created['id']}"
    shots = artifacts_dir / "hosted-checkout"
    async with browser_page(shots) as recorded:
        page = recorded.page
        response = await page.goto(url)
        assert response is not None and response.status == 200
        csp = response.headers["content-security-policy"]
        assert f"script-src 'self' {suite.stack.stripe.api_base};" in csp
        await page.locator("#amount", has_text="42.00 USD").wait_for()
        await page.locator("#description", has_text="A very good bicycle bell").wait_for()
        await fill_card(page, VISA)
        await shot(recorded, shots, "card-form")
        await page.click("#pay-button")
        await page.locator("#outcome", has_text="Payment successful").wait_for(timeout=30_000)
        await shot(recorded, shots, "card-success")
        back = await page.locator("#return-link").get_attribute("href")
        assert back == f"{SHOP}?payment_id={created['id']}&status=succeeded"
        assert_only_paygate_and_stripe(recorded, suite)
    paid = await payment_of(buyer, created["id"])
    assert paid["status"] == "succeeded" and paid["amount_captured"] == 4200
    intents = [
        pi
        for pi in suite.stack.stripe.payment_intents()
        if (pi.get("metadata") or {}).get("payment_id") == created["id"]
    ]
    assert len(intents) == 1 and intents[0]["status"] == "succeeded"


@pytest.mark.parametrize(
    ("answer", "outcome", "status"),
    [
        ("Complete authentication", "Payment successful", "succeeded"),
        ("Fail authentication", "Payment failed", "failed"),
    ],
)
async def test_a_3d_secure_card_shows_the_challenge_and_its_answer_decides(
    suite: Suite,
    http: httpx.AsyncClient,
    artifacts_dir: Path,
    answer: str,
    outcome: str,
    status: str,
) -> None:
    buyer = await sign_up(http)
    created = await checkout(buyer, amount=1500)
    shots = artifacts_dir / "hosted-checkout"
    async with browser_page(shots) as recorded:
        page = recorded.page
        await page.goto(created["next_action"]["redirect_to_url"]["url"])
        await fill_card(page, THREE_D_SECURE)
        await page.click("#pay-button")
        # The Stripe.js stand-in's 3-D Secure challenge.
        button = page.get_by_role("button", name=answer)
        await button.wait_for(timeout=30_000)
        assert (await payment_of(buyer, created["id"]))["status"] == "requires_action"
        await shot(recorded, shots, f"3ds-challenge-{status}")
        await button.click()
        await page.locator("#outcome", has_text=outcome).wait_for(timeout=30_000)
        await shot(recorded, shots, f"3ds-{status}")
        back = await page.locator("#return-link").get_attribute("href")
        assert back == f"{SHOP}?payment_id={created['id']}&status={status}"
        assert_only_paygate_and_stripe(recorded, suite)
    assert (await payment_of(buyer, created["id"]))["status"] == status


class MerchantSite:
    """A merchant's own page on another local port, with paygate's button script on it."""

    def __init__(self, gateway: str) -> None:
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.gateway = gateway
        self.checkout_url = ""
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = site.page().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)

    def page(self) -> str:
        return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Bells &amp; Co</title><link rel="icon" href="data:,"></head>
<body>
  <h1>Bells &amp; Co</h1>
  <button id="buy" data-paygate-checkout="{self.checkout_url}">Buy the bell</button>
  <pre id="outcomes">[]</pre>
  <script src="{self.gateway}/checkout/js/v1/button.js"></script>
  <script>
    window.outcomes = [];
    document.getElementById("buy").addEventListener("paygate:checkout", (event) => {{
      window.outcomes.push(event.detail);
      document.getElementById("outcomes").textContent = JSON.stringify(window.outcomes);
    }});
  </script>
</body></html>"""

    def __enter__(self) -> MerchantSite:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def merchant_site(suite: Suite) -> Iterator[MerchantSite]:
    with MerchantSite(suite.procs["gateway"].url) as site:
        yield site


async def test_the_button_pays_in_an_overlay_and_reports_only_paygates_own_messages(
    suite: Suite, http: httpx.AsyncClient, artifacts_dir: Path, merchant_site: MerchantSite
) -> None:
    buyer = await sign_up(http)
    created = await checkout(buyer, return_url=f"{merchant_site.origin}/thanks", amount=2900)
    merchant_site.checkout_url = created["next_action"]["redirect_to_url"]["url"]
    shots = artifacts_dir / "checkout-button"
    async with browser_page(shots) as recorded:
        page = recorded.page
        await page.goto(merchant_site.origin + "/")
        await page.click("#buy")
        frame = page.frame_locator("[data-paygate-overlay] iframe")
        await frame.locator("#amount", has_text="29.00 USD").wait_for(timeout=30_000)
        # A message that is not from paygate's frame (here: the merchant page itself, as any
        # script or other frame could) must not count as an outcome.
        await page.evaluate(
            """() => window.postMessage({source: "paygate-checkout", version: 1,
                 event: "completed", payment_id: "forged", status: "succeeded"}, "*")"""
        )
        await fill_card(frame, VISA)
        await shot(recorded, shots, "overlay")
        await frame.locator("#pay-button").click()
        await frame.locator("#outcome", has_text="Payment successful").wait_for(timeout=30_000)
        await page.locator("#outcomes", has_text=created["id"]).wait_for(timeout=10_000)
        await shot(recorded, shots, "overlay-success")
        outcomes = await page.evaluate("window.outcomes")
        assert outcomes == [
            {"event": "completed", "payment_id": created["id"], "status": "succeeded"}
        ]
        # Back to the shop: the overlay closes and says so; the shop page stays where it was.
        await frame.locator("#return-link").click()
        await page.locator("[data-paygate-overlay]").wait_for(state="detached", timeout=10_000)
        outcomes = await page.evaluate("window.outcomes")
        assert outcomes[-1] == {
            "event": "closed",
            "payment_id": created["id"],
            "status": "succeeded",
        }
        assert page.url == merchant_site.origin + "/"
        assert_only_paygate_and_stripe(recorded, suite, urlsplit(merchant_site.origin).netloc)
    assert (await payment_of(buyer, created["id"]))["status"] == "succeeded"


async def test_the_button_refuses_to_open_anything_but_a_paygate_checkout(
    suite: Suite, artifacts_dir: Path, merchant_site: MerchantSite
) -> None:
    merchant_site.checkout_url = (
        "https://evil.example.com/checkout/00000000-0000-0000-0000-000000000000"
    )
    async with browser_page(artifacts_dir / "checkout-button") as recorded:
        page = recorded.page
        await page.goto(merchant_site.origin + "/")
        error = await page.evaluate(
            """(url) => { try { PaygateCheckout.open(url); return null; }
                          catch (e) { return String(e.message); } }""",
            merchant_site.checkout_url,
        )
        assert error is not None and "not a paygate checkout URL" in error
        assert await page.locator("[data-paygate-overlay]").count() == 0


async def test_the_card_typed_in_the_browser_reaches_no_table_log_or_topic(suite: Suite) -> None:
    """Runs last in this module: the pages above typed these cards into Chromium."""
    await assert_nowhere(
        suite, (VISA, THREE_D_SECURE, "_secret_", "sk_test_"), written=("payment.event",)
    )
