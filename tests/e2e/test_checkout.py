"""Checkout end to end through the gateway: orders settle, customers are told, nothing is lost or charged twice."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx
import pytest
from e2e_support import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    Customer,
    Suite,
    assert_nowhere,
    paying_customer,
    sign_in,
    sign_up,
    topic_messages,
)

from paygate_devstack.events_testing import wait_for

pytestmark = pytest.mark.e2e


def intents_for(suite: Suite, order_id: str) -> list[dict[str, Any]]:
    """PaymentIntents at the provider for one order: more than one is a double charge."""
    return [
        pi
        for pi in suite.stack.stripe.payment_intents()
        if (pi.get("metadata") or {}).get("order_id") == order_id
    ]


def emails_to(suite: Suite, address: str) -> list[Any]:
    return [m for m in suite.stack.smtp.messages() if address in str(m["To"])]


def localstripe_card(suite: Suite, number: str) -> str:
    """Tokenise a test card at the provider, as Stripe.js would in the customer's browser."""
    r = httpx.post(
        f"{suite.stack.stripe.api_base}/v1/payment_methods",
        data={
            "type": "card",
            "card[number]": number,
            "card[exp_month]": "12",
            "card[exp_year]": "2034",
            "card[cvc]": "123",
        },
        headers={"Authorization": f"Bearer {suite.stack.stripe.api_key}"},
    )
    r.raise_for_status()
    return str(r.json()["id"])


async def test_paid_checkout_sends_a_receipt_and_crosses_kafka(
    suite: Suite, http: httpx.AsyncClient
) -> None:
    buyer = await sign_up(http)
    card = await buyer.save_card("pm_card_visa")
    assert (card["brand"], card["last4"]) == ("visa", "4242")

    r = await buyer.order(amount=1999, description="T-shirt")
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["status"] == "pending"

    assert await buyer.wait_status(order["id"], {"paid", "failed", "requires_action"}) == "paid"
    mail = await wait_for(lambda: emails_to(suite, buyer.email))
    assert len(mail) == 1
    assert "19.99" in mail[0].get_body(preferencelist=("plain",)).get_content()

    created = await topic_messages(suite.kafka.bootstrap, "order.create", key=order["id"])
    settled = await topic_messages(suite.kafka.bootstrap, "payment.event", key=order["id"])
    assert [m["event_type"] for m in created] == ["order.created"]
    assert "payment.succeeded" in [m["event_type"] for m in settled]
    # One correlation id follows the checkout: the gateway's request id, through both topics.
    assert created[0]["correlation_id"] == r.headers["x-request-id"]
    assert {m["correlation_id"] for m in settled} == {r.headers["x-request-id"]}
    assert len(intents_for(suite, order["id"])) == 1

    detail = (await http.get(f"/orders/{order['id']}", headers=buyer.headers)).json()
    assert detail["payment"]["payment_id"]


async def test_a_card_declined_on_charge_fails_the_order_and_says_so(
    suite: Suite, http: httpx.AsyncClient
) -> None:
    buyer = await sign_up(http)
    await buyer.save_card("pm_card_chargeCustomerFail")
    order = (await buyer.order(amount=500)).json()
    assert await buyer.wait_status(order["id"], {"paid", "failed", "requires_action"}) == "failed"
    detail = (await http.get(f"/orders/{order['id']}", headers=buyer.headers)).json()
    assert detail["payment"]["failure_code"]
    mail = await wait_for(lambda: emails_to(suite, buyer.email))
    assert len(mail) == 1


async def test_a_3d_secure_card_requires_action_not_payment(
    suite: Suite, http: httpx.AsyncClient
) -> None:
    buyer = await sign_up(http)
    await buyer.save_card(localstripe_card(suite, "4000002500003155"))
    order = (await buyer.order(amount=2500)).json()
    assert (
        await buyer.wait_status(order["id"], {"paid", "failed", "requires_action"})
        == "requires_action"
    )
    detail = (await http.get(f"/orders/{order['id']}", headers=buyer.headers)).json()
    assert "client_secret" not in json.dumps(detail)


async def test_one_idempotency_key_makes_one_order_and_one_charge(
    suite: Suite, http: httpx.AsyncClient
) -> None:
    buyer = await paying_customer(http)

    first = await buyer.order(amount=1200, key="retry-me")
    again = await buyer.order(amount=1200, key="retry-me")
    assert first.status_code == 201
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]

    storm = await asyncio.gather(*(buyer.order(amount=3300, key="storm") for _ in range(10)))
    codes = sorted(r.status_code for r in storm)
    assert set(codes) <= {201, 409}, codes
    ids = {r.json()["id"] for r in storm if r.status_code == 201}
    assert len(ids) == 1

    listing = (await http.get("/orders", headers=buyer.headers)).json()
    assert len(listing["items"]) == 2
    for order_id in (first.json()["id"], *ids):
        await buyer.wait_status(order_id, {"paid"})
        assert len(intents_for(suite, order_id)) == 1


async def test_smtp_outage_dead_letters_and_replay_sends_exactly_once(
    suite: Suite, http: httpx.AsyncClient
) -> None:
    admin = await sign_in(http, ADMIN_EMAIL, ADMIN_PASSWORD)
    buyer = await paying_customer(http)
    suite.stack.smtp.stop()
    try:
        order = (await buyer.order(amount=4200)).json()
        await buyer.wait_status(order["id"], {"paid"})

        async def dead_letter() -> dict[str, Any] | None:
            r = await http.get("/admin/notifications/dead-letters", headers=admin.headers)
            assert r.status_code == 200, r.text
            body = r.json()
            items = body["items"] if isinstance(body, dict) else body
            return next((d for d in items if d.get("order_id") == order["id"]), None)

        letter = await wait_for(dead_letter, timeout=40)
        assert letter["attempts"] == 3
        assert letter["last_error"]
        dlq = await topic_messages(suite.kafka.bootstrap, "notification.dlq", contains=order["id"])
        assert dlq, "the failed notification must reach notification.dlq"
    finally:
        suite.stack.smtp.start()
    assert emails_to(suite, buyer.email) == []

    r = await http.post(
        f"/admin/notifications/dead-letters/{letter['id']}/replay", headers=admin.headers
    )
    assert r.status_code in (200, 202), r.text
    await wait_for(lambda: emails_to(suite, buyer.email), timeout=20)
    await asyncio.sleep(2)  # a second send would land by now
    assert len(emails_to(suite, buyer.email)) == 1
    again = await http.post(
        f"/admin/notifications/dead-letters/{letter['id']}/replay", headers=admin.headers
    )
    assert again.status_code == 409


async def _place_orders(buyer: Customer, count: int, pause_after: int, during: Any) -> list[str]:
    ids: list[str] = []
    for i in range(count):
        if i == pause_after and during is not None:
            await during()
        r = await buyer.order(amount=100 + i)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
        await asyncio.sleep(0.05)
    return ids


@pytest.mark.slow
async def test_payment_service_sigkill_mid_flow_loses_and_double_charges_nothing(
    suite: Suite, http: httpx.AsyncClient
) -> None:
    buyer = await paying_customer(http)
    payment = suite.procs["payment"]

    async def kill() -> None:
        payment.kill()

    ids = await _place_orders(buyer, 30, pause_after=10, during=kill)
    await asyncio.sleep(1)
    payment.restart()
    for order_id in ids:
        assert await buyer.wait_status(order_id, {"paid", "failed"}, timeout=60) == "paid"
    charges = {order_id: len(intents_for(suite, order_id)) for order_id in ids}
    assert set(charges.values()) == {1}, charges


@pytest.mark.slow
async def test_broker_stalled_for_ten_seconds_loses_nothing(
    suite: Suite, http: httpx.AsyncClient
) -> None:
    buyer = await paying_customer(http)
    kafka = suite.kafka
    ids: list[str] = []
    kafka.pause()
    try:
        started = time.monotonic()
        ids = await _place_orders(buyer, 10, pause_after=-1, during=None)
        await asyncio.sleep(max(0.0, 10 - (time.monotonic() - started)))
    finally:
        kafka.resume()
    for order_id in ids:
        assert await buyer.wait_status(order_id, {"paid", "failed"}, timeout=90) == "paid"
        assert len(intents_for(suite, order_id)) == 1


def _stripe_signature(secret: str, payload: bytes, timestamp: int | None = None) -> str:
    ts = int(time.time()) if timestamp is None else timestamp
    sig = hmac.new(secret.encode(), f"{ts}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={ts},v1={sig}"


async def test_stripe_webhooks_forged_stale_and_duplicate(
    suite: Suite, http: httpx.AsyncClient
) -> None:
    buyer = await sign_up(http)
    await buyer.save_card(localstripe_card(suite, "4000002500003155"))
    order = (await buyer.order(amount=777)).json()
    await buyer.wait_status(order["id"], {"requires_action"})
    detail = (await http.get(f"/orders/{order['id']}", headers=buyer.headers)).json()
    payment = (
        await http.get(f"/payments/{detail['payment']['payment_id']}", headers=buyer.headers)
    ).json()
    intent_id = payment["provider_reference"]

    event = {
        "id": f"evt_{uuid.uuid4().hex[:16]}",
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": int(time.time()),
        "data": {
            "object": {
                "id": intent_id,
                "object": "payment_intent",
                "status": "succeeded",
                "amount": 777,
                "currency": "usd",
                "metadata": {"order_id": order["id"], "payment_id": payment["id"]},
            }
        },
    }
    body = json.dumps(event).encode()
    secret = suite.stack.stripe_webhook_secret

    forged = await http.post(
        "/webhooks/stripe",
        content=body,
        headers={
            "Stripe-Signature": _stripe_signature("whsec_wrong", body),
            "content-type": "application/json",
        },
    )
    stale = await http.post(
        "/webhooks/stripe",
        content=body,
        headers={
            "Stripe-Signature": _stripe_signature(secret, body, int(time.time()) - 600),
            "content-type": "application/json",
        },
    )
    assert (forged.status_code, stale.status_code) == (400, 400)
    await asyncio.sleep(1)
    assert (await http.get(f"/orders/{order['id']}/status", headers=buyer.headers)).json()[
        "status"
    ] == "requires_action"

    for _ in range(2):
        genuine = await http.post(
            "/webhooks/stripe",
            content=body,
            headers={
                "Stripe-Signature": _stripe_signature(secret, body),
                "content-type": "application/json",
            },
        )
        assert genuine.status_code == 200, genuine.text
    assert await buyer.wait_status(order["id"], {"paid"}) == "paid"
    await asyncio.sleep(1.5)
    events = await topic_messages(suite.kafka.bootstrap, "payment.event", key=order["id"])
    assert [m["event_type"] for m in events].count("payment.succeeded") == 1


# Card numbers the suite used (tokenised at the provider by the test, as Stripe.js would) and
# markers of provider secrets; none may appear in paygate's tables, logs or Kafka messages.
FORBIDDEN = ("4000002500003155", "4242424242424242", "4000000000000341", "_secret_", "sk_test_")


async def test_no_card_data_or_secret_reaches_tables_logs_or_kafka(suite: Suite) -> None:
    """Runs last in this module: everything above has written its rows, logs and events."""
    await assert_nowhere(suite, FORBIDDEN)
