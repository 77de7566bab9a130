"""PayPal and SSLCommerz through payment-service's API, against their devstack stand-ins.

The payer's part is what a browser does: follow the approval / gateway link (redirects
followed). PayPal's webhooks and SSLCommerz's IPNs are the stand-ins' own, signed as the real
providers sign them, delivered to the service's real port.
"""

from __future__ import annotations

import logging
import time
import uuid
import zlib
from typing import Any

import httpx
import pytest
from payment_tests_support import (
    LiveServer,
    Merchant,
    Orders,
    UserServiceStandIn,
    paypal_access_token,
)
from sqlalchemy import func, select

from paygate_common.auth import SigningKey
from paygate_common.events import CONFIG_CHANGED, ConfigChanged, new_event
from paygate_devstack import paypal_standin, sslcommerz_standin
from paygate_devstack.events_testing import wait_for
from paygate_devstack.sslcommerz_standin import read_redirect_form
from payment_service.store.tables import refunds, webhook_events


@pytest.fixture
async def merchant(
    payment_service: LiveServer, signing_key: SigningKey, user_service: UserServiceStandIn
) -> Merchant:
    # A user without a saved card: PayPal and SSLCommerz need none.
    return Merchant(payment_service, signing_key, user_service.add_user("pm_card_visa", None))


async def created(merchant: Merchant, **body: Any) -> dict[str, Any]:
    """A payment that waits for its payer, with the provider's link."""
    r = await merchant.post("/payments", body)
    assert r.status_code == 202, r.text
    payment = await merchant.settled(r.json()["id"], {"requires_action", "failed"})
    assert payment["status"] == "requires_action", payment
    redirect = payment["next_action"]["redirect_to_url"]
    assert redirect["url"].startswith("http://127.0.0.1")
    return payment


async def approve_at_paypal(payment: dict[str, Any]) -> httpx.Response:
    """The payer follows the approval link; the stand-in approves and sends them back to us."""
    async with httpx.AsyncClient(follow_redirects=True, timeout=30) as browser:
        landed = await browser.get(payment["next_action"]["redirect_to_url"]["url"])
    assert landed.status_code == 200, landed.text
    assert f"/provider-return/paypal/{payment['id']}" in str(landed.url)
    return landed


async def paid_with_paypal(merchant: Merchant, amount: int = 4200) -> dict[str, Any]:
    payment = await created(merchant, amount=amount, currency="usd", provider="paypal")
    landed = await approve_at_paypal(payment)
    assert landed.json() == {"id": payment["id"], "status": "succeeded"}
    return dict((await merchant.get(f"/payments/{payment['id']}")).json())


async def test_paypal_automatic_payment_succeeds_once_the_payer_approves(
    merchant: Merchant, paypal: Any
) -> None:
    payment = await created(merchant, amount=4200, currency="usd", provider="paypal")
    assert payment["provider"] == "paypal" and payment["provider_reference"]
    order = paypal.orders[payment["provider_reference"]]
    assert order["intent"] == "CAPTURE"
    assert order["purchase_unit"]["custom_id"] == payment["id"]
    landed = await approve_at_paypal(payment)
    assert landed.json()["status"] == "succeeded"
    paid = (await merchant.get(f"/payments/{payment['id']}")).json()
    assert (paid["status"], paid["amount_captured"]) == ("succeeded", 4200)
    # captured exactly once at PayPal, whatever arrived too (the return and the webhooks)
    assert len(paypal.orders[payment["provider_reference"]]["capture_ids"]) == 1


async def test_paypal_manual_capture_in_part_then_refunds_in_part_and_the_rest(
    merchant: Merchant, paypal: Any
) -> None:
    payment = await created(
        merchant, amount=5000, currency="usd", provider="paypal", capture_method="manual"
    )
    assert paypal.orders[payment["provider_reference"]]["intent"] == "AUTHORIZE"
    landed = await approve_at_paypal(payment)
    assert landed.json()["status"] == "requires_capture"
    held = (await merchant.get(f"/payments/{payment['id']}")).json()
    assert held["amount_capturable"] == 5000

    captured = await merchant.post(f"/payments/{payment['id']}/capture", {"amount": 3000})
    assert captured.status_code == 200, captured.text
    assert (captured.json()["status"], captured.json()["amount_captured"]) == ("succeeded", 3000)

    part = await merchant.post(f"/payments/{payment['id']}/refunds", {"amount": 1000})
    assert (part.status_code, part.json()["status"]) == (201, "succeeded"), part.text
    after_part = (await merchant.get(f"/payments/{payment['id']}")).json()
    assert (after_part["status"], after_part["amount_refunded"]) == ("partially_refunded", 1000)
    rest = await merchant.post(f"/payments/{payment['id']}/refunds", {})
    assert (rest.status_code, rest.json()["amount"], rest.json()["status"]) == (
        201,
        2000,
        "succeeded",
    ), rest.text
    done = (await merchant.get(f"/payments/{payment['id']}")).json()
    assert (done["status"], done["amount_refunded"]) == ("refunded", 3000)
    # at PayPal: one capture of 30.00, refunded 10.00 + 20.00
    order = paypal.orders[payment["provider_reference"]]
    (capture_id,) = order["capture_ids"]
    assert paypal.captures[capture_id]["amount"]["value"] == "30.00"
    assert sorted(
        paypal.refunds[r]["amount"]["value"] for r in paypal.captures[capture_id]["refund_ids"]
    ) == ["10.00", "20.00"]


async def test_paypal_payer_who_cancels_leaves_a_cancelled_payment(merchant: Merchant) -> None:
    # the stand-in's payer cancels orders whose minor units end in 02
    payment = await created(merchant, amount=4202, currency="usd", provider="paypal")
    async with httpx.AsyncClient(follow_redirects=True, timeout=30) as browser:
        landed = await browser.get(payment["next_action"]["redirect_to_url"]["url"])
    assert landed.json() == {"id": payment["id"], "status": "cancelled"}


async def test_paypal_webhook_forged_or_from_a_foreign_certificate_host_changes_nothing_and_a_genuine_one_applies_once(
    merchant: Merchant, paypal: Any, payment_service: LiveServer, db_sessionmaker: Any
) -> None:
    paid = await paid_with_paypal(merchant)
    order = paypal.orders[paid["provider_reference"]]
    (capture_id,) = order["capture_ids"]
    # A refund made in PayPal's own dashboard: PayPal says so with PAYMENT.CAPTURE.REFUNDED.
    async with httpx.AsyncClient(base_url=paypal.url, timeout=10) as http:
        token = await paypal_access_token(http)
        made = await http.post(
            f"/v2/payments/captures/{capture_id}/refund",
            json={"amount": {"currency_code": "USD", "value": "5.00"}},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert made.status_code == 201, made.text

    async def refunded_by_webhook() -> dict[str, Any] | None:
        body = (await merchant.get(f"/payments/{paid['id']}")).json()
        return body if body["amount_refunded"] == 500 else None

    assert (await wait_for(refunded_by_webhook, timeout=30))["status"] == "partially_refunded"
    (event_id,) = [
        e
        for e, stored in paypal.events.items()
        if stored["event"]["event_type"] == "PAYMENT.CAPTURE.REFUNDED"
        and stored["event"]["resource"]["id"] == made.json()["id"]
    ]
    genuine = paypal.events[event_id]["body"]
    webhook_id = next(iter(paypal.webhooks))
    url = f"{payment_service.url}/webhooks/paypal"

    forged_body = genuine.replace(event_id, "WH-FORGED-1").replace('"5.00"', '"40.00"')
    impostor = paypal_standin.SigningIdentity(None)  # someone else's key and certificate
    signed_by_impostor = paypal.signed_headers(webhook_id, forged_body, paypal.url)
    message = "|".join(
        [
            signed_by_impostor["PAYPAL-TRANSMISSION-ID"],
            signed_by_impostor["PAYPAL-TRANSMISSION-TIME"],
            webhook_id,
            str(zlib.crc32(forged_body.encode()) & 0xFFFFFFFF),
        ]
    )
    signed_by_impostor["PAYPAL-TRANSMISSION-SIG"] = impostor.sign(message.encode())
    foreign_host = {
        **paypal.signed_headers(webhook_id, forged_body, paypal.url),
        "PAYPAL-CERT-URL": "http://evil.example.com/v1/notifications/certs/CERT-1",
    }
    tampered_after_signing = paypal.signed_headers(webhook_id, genuine, paypal.url)
    async with httpx.AsyncClient(timeout=10) as http:
        for headers, body, reason in [
            (signed_by_impostor, forged_body, "signature_mismatch"),
            (foreign_host, forged_body, "cert_host_not_allowed"),
            (tampered_after_signing, forged_body, "signature_mismatch"),
        ]:
            r = await http.post(url, content=body.encode(), headers=headers)
            assert (r.status_code, r.json()["code"], r.json()["reason"]) == (
                400,
                "invalid_signature",
                reason,
            ), r.text
        # the genuine delivery again (PayPal retries): acknowledged, applied once
        again = await http.post(
            url,
            content=genuine.encode(),
            headers=paypal.signed_headers(webhook_id, genuine, paypal.url),
        )
    assert again.status_code == 200 and again.json() == {"received": True, "duplicate": True}
    after = (await merchant.get(f"/payments/{paid['id']}")).json()
    assert (after["status"], after["amount_refunded"]) == ("partially_refunded", 500)
    async with db_sessionmaker() as session:
        forged_rows = await session.scalar(
            select(func.count()).where(webhook_events.c.event_id == "WH-FORGED-1")
        )
        refund_rows = await session.scalar(
            select(func.count()).where(refunds.c.payment_id == uuid.UUID(paid["id"]))
        )
    assert (forged_rows, refund_rows) == (0, 1)


def _sslcommerz_ipn(payment_id: str, amount: str, password: str) -> dict[str, str]:
    fields = {
        "tran_id": payment_id,
        "val_id": "FORGED" + uuid.uuid4().hex[:10].upper(),
        "amount": amount,
        "currency": "BDT",
        "currency_type": "BDT",
        "currency_amount": amount,
        "bank_tran_id": "FORGEDBANK",
        "status": "VALID",
        "store_id": sslcommerz_standin.STORE_ID,
        "tran_date": "2026-12-02 00:00:00",
        "value_a": payment_id,
    }
    return sslcommerz_standin.sign(fields, password, ",".join(sorted(fields)))


async def test_sslcommerz_bdt_payment_succeeds_by_ipn_after_the_gateway_page_then_refunds(
    merchant: Merchant, sslcommerz: Any
) -> None:
    payment = await created(merchant, amount=150000, currency="bdt", provider="sslcommerz")
    session = next(s for s in sslcommerz.sessions.values() if s["form"]["tran_id"] == payment["id"])
    assert session["form"]["total_amount"] == "1500.00" and session["form"]["currency"] == "BDT"
    async with httpx.AsyncClient(follow_redirects=True, timeout=30) as browser:
        page = await browser.get(payment["next_action"]["redirect_to_url"]["url"])
    method, action, fields = read_redirect_form(page.text)
    assert method == "POST" and action.endswith(
        f"/provider-return/sslcommerz/{payment['id']}/success"
    )
    # the stand-in POSTs the IPN in the background: that alone makes it paid ...
    paid = await merchant.settled(payment["id"], {"succeeded"})
    # ... and the browser's own POST of the signed fields, arriving after, changes nothing
    async with httpx.AsyncClient(timeout=30) as browser:
        back = await browser.post(action, data=fields)
    assert back.json() == {"id": payment["id"], "status": "succeeded"}, back.text
    assert (paid["amount_captured"], paid["provider_reference"]) == (150000, payment["id"])

    refund = await merchant.post(f"/payments/{payment['id']}/refunds", {"amount": 50000})
    assert (refund.status_code, refund.json()["status"]) == (201, "succeeded"), refund.text
    rest = await merchant.post(f"/payments/{payment['id']}/refunds", {})
    assert (rest.status_code, rest.json()["status"], rest.json()["amount"]) == (
        201,
        "succeeded",
        100000,
    )
    done = (await merchant.get(f"/payments/{payment['id']}")).json()
    assert (done["status"], done["amount_refunded"]) == ("refunded", 150000)
    assert sorted(
        r["amount"] for r in sslcommerz.refunds.values() if r["tran_id"] == payment["id"]
    ) == ["1000.00", "500.00"]


async def test_sslcommerz_ipn_with_a_wrong_signature_or_another_amount_changes_nothing(
    merchant: Merchant,
    sslcommerz: Any,
    payment_service: LiveServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="payment_service.webhooks")
    payment = await created(merchant, amount=150000, currency="bdt", provider="sslcommerz")
    url = f"{payment_service.url}/webhooks/sslcommerz"
    async with httpx.AsyncClient(timeout=10) as http:
        wrong_sign = await http.post(
            url, data=_sslcommerz_ipn(payment["id"], "1500.00", "not-the-store-password")
        )
    assert (wrong_sign.status_code, wrong_sign.json()["reason"]) == (400, "signature_mismatch")

    # A genuinely paid, genuinely signed transaction for our tran_id — but of 10.00, not
    # 1500.00 (a tampered session): the validation API's amount is compared with ours.
    async with httpx.AsyncClient(base_url=sslcommerz.url, timeout=10) as http:
        init = await http.post(
            "/gwprocess/v4/api.php",
            data={
                **session_form(payment["id"], payment_service.url),
                "total_amount": "10.00",
            },
        )
        assert init.json()["status"] == "SUCCESS", init.text
        await http.get(init.json()["GatewayPageURL"])

    async def rejected_ipn() -> bool:
        return any(
            d["tran_id"] == payment["id"] and d.get("status_code") == 400
            for d in sslcommerz.notifier.deliveries
        )

    await wait_for(rejected_ipn, timeout=30)
    still = (await merchant.get(f"/payments/{payment['id']}")).json()
    assert (still["status"], still["amount_captured"]) == ("requires_action", 0)
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "signature_mismatch" in logged and "amount_mismatch" in logged


def session_form(payment_id: str, base: str) -> dict[str, str]:
    return {
        "store_id": sslcommerz_standin.STORE_ID,
        "store_passwd": sslcommerz_standin.STORE_PASSWORD,
        "currency": "BDT",
        "tran_id": payment_id,
        "success_url": f"{base}/provider-return/sslcommerz/{payment_id}/success",
        "fail_url": f"{base}/provider-return/sslcommerz/{payment_id}/fail",
        "cancel_url": f"{base}/provider-return/sslcommerz/{payment_id}/cancel",
        "ipn_url": f"{base}/webhooks/sslcommerz",
        "cus_name": "Mallory",
        "cus_email": "mallory@example.com",
        "cus_add1": "x",
        "cus_city": "Dhaka",
        "cus_postcode": "1000",
        "cus_country": "Bangladesh",
        "cus_phone": "0",
        "shipping_method": "NO",
        "num_of_item": "1",
        "product_name": "x",
        "product_category": "x",
        "product_profile": "general",
    }


async def test_flows_a_provider_cannot_do_answer_unsupported_by_provider(
    merchant: Merchant,
) -> None:
    manual = await merchant.post(
        "/payments",
        {"amount": 150000, "currency": "bdt", "provider": "sslcommerz", "capture_method": "manual"},
    )
    assert (manual.status_code, manual.json()["code"]) == (422, "unsupported_by_provider")
    payment = await created(merchant, amount=150000, currency="bdt", provider="sslcommerz")
    cancel = await merchant.post(f"/payments/{payment['id']}/cancel")
    assert (cancel.status_code, cancel.json()["code"]) == (422, "unsupported_by_provider")
    # a redirect provider takes no card token; a saved Stripe method cannot pay by PayPal
    token = await merchant.post(
        "/payments",
        {"amount": 1000, "currency": "usd", "provider": "paypal", "payment_method": "pm_card_visa"},
    )
    assert (token.status_code, token.json()["code"]) == (422, "payment_method_provider_mismatch")


async def test_provider_choice_follows_payments_providers_from_config_changed(
    merchant: Merchant, orders: Orders
) -> None:
    named = await merchant.post(
        "/payments", {"amount": 4200, "currency": "usd", "provider": "paypal"}
    )
    assert named.json()["provider"] == "paypal"
    default = await merchant.post("/payments", {"amount": 4200, "currency": "usd"})
    assert default.json()["provider"] == "stripe"

    version = int(time.time() * 1000)

    async def publish(value: dict[str, Any], v: int) -> None:
        await orders.send(
            CONFIG_CHANGED,
            new_event(
                ConfigChanged(key="payments.providers", config_version=v, value=value),
                producer="admin-service",
                aggregate_id="payments.providers",
            ),
        )

    async def refused() -> bool:
        r = await merchant.post(
            "/payments", {"amount": 150000, "currency": "bdt", "provider": "sslcommerz"}
        )
        return r.status_code == 422 and r.json()["code"] == "provider_not_available"

    await publish({"enabled": ["stripe", "paypal", "sandbox"], "default": "paypal"}, version)
    try:
        await wait_for(refused, timeout=30)
        now_default = await merchant.post("/payments", {"amount": 4200, "currency": "usd"})
        assert now_default.json()["provider"] == "paypal"
    finally:
        await publish(
            {"enabled": ["stripe", "sandbox", "paypal", "sslcommerz"], "default": "stripe"},
            version + 1,
        )

    async def accepted() -> bool:
        r = await merchant.post(
            "/payments", {"amount": 150000, "currency": "bdt", "provider": "sslcommerz"}
        )
        return r.status_code == 202

    await wait_for(accepted, timeout=30)
