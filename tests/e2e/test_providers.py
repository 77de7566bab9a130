"""PayPal and SSLCommerz end to end through the gateway, against their stand-ins as processes.

The stand-ins run as `make run` runs them (their own processes, state in the session's
directory); payment-service is restarted with the environment `make run` gives it for them.
The payer's part is a browser's: follow the approval / gateway link, redirects followed; the
return and the IPN reach payment-service through the gateway's public routes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_support import Customer, Suite, payment_settled, sign_up

from paygate_devstack.process import free_port
from paygate_devstack.sslcommerz_standin import read_redirect_form
from paygate_devstack.standins import StandInProcess, provider_env

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def providers(suite: Suite, devstack_dir: Path) -> Iterator[dict[str, StandInProcess]]:
    """The two stand-ins, and payment-service restarted to reach them."""
    probes = {
        "paypal": "/v1/notifications/certs/CERT-paygate-standin",
        "sslcommerz": "/EasyCheckOut/none",
    }
    standins = {
        name: StandInProcess(
            name,
            free_port(),
            state_dir=devstack_dir / "e2e-providers" / name,
            log_path=devstack_dir / "logs" / f"{name}-e2e.log",
            probe_path=probe,
        )
        for name, probe in probes.items()
    }
    for standin in standins.values():
        standin.start()
    old = suite.procs["payment"]
    env = {**old.env, **provider_env(standins, payment_url=old.url)}
    old.stop()
    if old in suite.stack.started:
        suite.stack.started.remove(old)
    suite.procs["payment"] = suite.stack.start_service("payment", env)
    try:
        yield standins
    finally:
        for standin in standins.values():
            standin.stop()


async def post(buyer: Customer, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
    return await buyer.http.post(path, json=body, headers=buyer.headers)


async def waiting_for_payer(buyer: Customer, **body: Any) -> dict[str, Any]:
    r = await post(buyer, "/payments", body)
    assert r.status_code == 202, r.text
    payment = await payment_settled(buyer, r.json()["id"], {"requires_action", "failed"})
    assert payment["status"] == "requires_action", payment
    assert payment["next_action"]["type"] == "redirect_to_url"
    return payment


async def follow(url: str) -> httpx.Response:
    async with httpx.AsyncClient(follow_redirects=True, timeout=30) as browser:
        return await browser.get(url)


async def test_paypal_automatic_and_manual_capture_with_refunds_through_the_gateway(
    suite: Suite, http: httpx.AsyncClient, providers: dict[str, StandInProcess]
) -> None:
    buyer = await sign_up(http)
    automatic = await waiting_for_payer(buyer, amount=4200, currency="usd", provider="paypal")
    landed = await follow(automatic["next_action"]["redirect_to_url"]["url"])
    # back through the gateway's public return route, with no JWT
    assert str(landed.url).startswith(f"{suite.api}/provider-return/paypal/{automatic['id']}")
    assert landed.json() == {"id": automatic["id"], "status": "succeeded"}, landed.text
    paid = await payment_settled(buyer, automatic["id"], {"succeeded"})
    assert paid["amount_captured"] == 4200

    manual = await waiting_for_payer(
        buyer, amount=5000, currency="usd", provider="paypal", capture_method="manual"
    )
    landed = await follow(manual["next_action"]["redirect_to_url"]["url"])
    assert landed.json()["status"] == "requires_capture", landed.text
    captured = await post(buyer, f"/payments/{manual['id']}/capture", {"amount": 3000})
    assert (captured.status_code, captured.json()["status"]) == (200, "succeeded"), captured.text
    part = await post(buyer, f"/payments/{manual['id']}/refunds", {"amount": 1000})
    assert (part.status_code, part.json()["status"]) == (201, "succeeded"), part.text
    partly = await payment_settled(buyer, manual["id"], {"partially_refunded"})
    assert partly["amount_refunded"] == 1000
    rest = await post(buyer, f"/payments/{manual['id']}/refunds", {})
    assert (rest.status_code, rest.json()["amount"]) == (201, 2000), rest.text
    done = await payment_settled(buyer, manual["id"], {"refunded"})
    assert (done["amount_captured"], done["amount_refunded"]) == (3000, 3000)


async def test_paypal_webhook_with_a_forged_signature_is_refused_at_the_gateway_route(
    suite: Suite, http: httpx.AsyncClient, providers: dict[str, StandInProcess]
) -> None:
    paypal = providers["paypal"]
    body = b'{"id": "WH-FORGED-E2E", "event_type": "PAYMENT.CAPTURE.REFUNDED", "resource": {}}'
    headers = {
        "PAYPAL-TRANSMISSION-ID": "00000000-0000-0000-0000-000000000000",
        "PAYPAL-TRANSMISSION-TIME": "2026-12-02T00:00:00Z",
        "PAYPAL-TRANSMISSION-SIG": "Zm9yZ2Vk",
        "PAYPAL-AUTH-ALGO": "SHA256withRSA",
        "Content-Type": "application/json",
    }
    async with httpx.AsyncClient(timeout=15) as client:
        forged = await client.post(
            f"{suite.api}/webhooks/paypal",
            content=body,
            headers={
                **headers,
                "PAYPAL-CERT-URL": f"{paypal.url}/v1/notifications/certs/CERT-paygate-standin",
            },
        )
        foreign = await client.post(
            f"{suite.api}/webhooks/paypal",
            content=body,
            headers={**headers, "PAYPAL-CERT-URL": "https://evil.example.com/cert.pem"},
        )
    assert (forged.status_code, forged.json()["reason"]) == (400, "signature_mismatch")
    assert (foreign.status_code, foreign.json()["reason"]) == (400, "cert_host_not_allowed")


async def test_sslcommerz_bdt_payment_is_paid_by_its_ipn_and_refunded_through_the_gateway(
    suite: Suite, http: httpx.AsyncClient, providers: dict[str, StandInProcess]
) -> None:
    buyer = await sign_up(http)
    payment = await waiting_for_payer(buyer, amount=150000, currency="bdt", provider="sslcommerz")
    page = await follow(payment["next_action"]["redirect_to_url"]["url"])
    method, action, _ = read_redirect_form(page.text)
    assert method == "POST"
    assert action == f"{suite.api}/provider-return/sslcommerz/{payment['id']}/success"
    # Only the IPN (POSTed by SSLCommerz to the gateway's public route) makes it paid here.
    paid = await payment_settled(buyer, payment["id"], {"succeeded"})
    assert (paid["amount_captured"], paid["currency"]) == (150000, "bdt")

    refund = await post(buyer, f"/payments/{payment['id']}/refunds", {})
    assert (refund.status_code, refund.json()["status"]) == (201, "succeeded"), refund.text
    done = await payment_settled(buyer, payment["id"], {"refunded"})
    assert done["amount_refunded"] == 150000
