"""Payments API end to end through the gateway: capture, void, refunds, ownership, crashes, order refunds."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from e2e_support import Customer, Suite, paying_customer, payment_settled, sign_up, topic_messages

from paygate_devstack.events_testing import wait_for

pytestmark = pytest.mark.e2e


async def post(
    buyer: Customer, path: str, body: dict[str, Any] | None = None, key: str | None = None
) -> httpx.Response:
    headers = dict(buyer.headers)
    if key:
        headers["Idempotency-Key"] = key
    return await buyer.http.post(path, json=body, headers=headers)


async def payment(buyer: Customer, amount: int = 1000, **extra: Any) -> dict[str, Any]:
    r = await post(buyer, "/payments", {"amount": amount, "currency": "usd", **extra})
    assert r.status_code == 202, r.text
    wanted = {"requires_capture"} if extra.get("capture_method") == "manual" else {"succeeded"}
    return await payment_settled(buyer, r.json()["id"], wanted | {"failed"})


def provider_refunds(suite: Suite, intent_id: str) -> list[dict[str, Any]]:
    return [
        r
        for r in suite.stack.stripe.list_objects("refunds")
        if r.get("payment_intent") == intent_id
    ]


async def test_authorise_then_capture_less_then_nothing_more(
    suite: Suite, http: httpx.AsyncClient
) -> None:
    buyer = await paying_customer(http)
    authorised = await payment(buyer, 1000, capture_method="manual")
    assert (authorised["status"], authorised["amount_capturable"]) == ("requires_capture", 1000)

    r = await post(buyer, f"/payments/{authorised['id']}/capture", {"amount": 600})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["amount_captured"], r.json()["amount_capturable"]) == (
        "succeeded",
        600,
        0,
    )
    again = await post(buyer, f"/payments/{authorised['id']}/capture")
    assert again.status_code == 409 and again.json()["code"] == "invalid_state"

    events = await topic_messages(suite.kafka.bootstrap, "payment.event", key=authorised["id"])
    steps = [(m["event_type"], m["payload"]["amount_captured"]) for m in events]
    assert steps == [("payment.requires_capture", 0), ("payment.succeeded", 600)]


async def test_void_then_no_capture_and_no_void_after_capture(
    suite: Suite, http: httpx.AsyncClient
) -> None:
    buyer = await paying_customer(http)
    authorised = await payment(buyer, capture_method="manual")
    r = await post(buyer, f"/payments/{authorised['id']}/cancel")
    assert (r.status_code, r.json()["status"]) == (200, "cancelled"), r.text
    late = await post(buyer, f"/payments/{authorised['id']}/capture")
    assert late.status_code == 409

    other = await payment(buyer, capture_method="manual")
    assert (await post(buyer, f"/payments/{other['id']}/capture")).status_code == 200
    refused = await post(buyer, f"/payments/{other['id']}/cancel")
    assert refused.status_code == 409 and refused.json()["code"] == "invalid_state"


async def test_refunds_in_parts_never_exceed_the_capture(
    suite: Suite, http: httpx.AsyncClient
) -> None:
    buyer = await paying_customer(http)
    paid = await payment(buyer, 1000)
    path = f"/payments/{paid['id']}/refunds"
    assert (await post(buyer, path, {"amount": 300})).status_code == 201
    assert (await post(buyer, path, {"amount": 300})).status_code == 201
    partly = await payment_settled(buyer, paid["id"], {"partially_refunded"})
    assert partly["amount_refunded"] == 600
    too_much = await post(buyer, path, {"amount": 500})
    assert too_much.status_code == 422 and too_much.json()["code"] == "refund_exceeds_captured"
    rest = await post(buyer, path, {"amount": 400})
    assert rest.status_code == 201
    assert (await payment_settled(buyer, paid["id"], {"refunded"}))["amount_refunded"] == 1000
    assert sorted(r["amount"] for r in provider_refunds(suite, paid["provider_reference"])) == [
        300,
        300,
        400,
    ]


async def test_twenty_racing_refunds_refund_exactly_the_captured_amount(
    suite: Suite, http: httpx.AsyncClient
) -> None:
    buyer = await paying_customer(http)
    paid = await payment(buyer, 1000)
    path = f"/payments/{paid['id']}/refunds"
    answers = await asyncio.gather(*(post(buyer, path, {"amount": 100}) for _ in range(20)))
    assert sorted(r.status_code for r in answers) == [201] * 10 + [422] * 10
    final = await payment_settled(buyer, paid["id"], {"refunded"})
    assert final["amount_refunded"] == 1000
    at_provider = provider_refunds(suite, paid["provider_reference"])
    assert len(at_provider) == 10 and sum(r["amount"] for r in at_provider) == 1000


async def test_a_retried_refund_is_made_once_and_a_changed_one_is_refused(
    suite: Suite, http: httpx.AsyncClient
) -> None:
    buyer = await paying_customer(http)
    paid = await payment(buyer, 1000)
    path = f"/payments/{paid['id']}/refunds"
    first = await post(buyer, path, {"amount": 200}, key="refund-retry")
    again = await post(buyer, path, {"amount": 200}, key="refund-retry")
    changed = await post(buyer, path, {"amount": 300}, key="refund-retry")
    assert (first.status_code, again.status_code, changed.status_code) == (201, 201, 422)
    assert again.json()["id"] == first.json()["id"]
    assert len(provider_refunds(suite, paid["provider_reference"])) == 1


async def test_another_user_gets_404_on_every_payment_route(
    suite: Suite, http: httpx.AsyncClient
) -> None:
    owner = await paying_customer(http)
    authorised = await payment(owner, capture_method="manual")
    stranger = await sign_up(http)
    pid = authorised["id"]
    answers = [
        await stranger.http.get(f"/payments/{pid}", headers=stranger.headers),
        await stranger.http.get(f"/payments/{pid}/refunds", headers=stranger.headers),
        await post(stranger, f"/payments/{pid}/capture"),
        await post(stranger, f"/payments/{pid}/cancel"),
        await post(stranger, f"/payments/{pid}/refunds", {"amount": 100}),
    ]
    assert [r.status_code for r in answers] == [404] * 5
    assert (await payment_settled(owner, pid, {"requires_capture"}))["amount_capturable"] == 1000


async def test_a_paid_order_refunded_in_full_is_refunded_and_the_customer_told(
    suite: Suite, http: httpx.AsyncClient
) -> None:
    buyer = await paying_customer(http)
    order = (await buyer.order(amount=2500)).json()
    assert await buyer.wait_status(order["id"], {"paid", "failed"}) == "paid"
    r = await post(buyer, f"/orders/{order['id']}/refund")
    assert (r.status_code, r.json()["status"]) == (202, "paid"), r.text
    assert await buyer.wait_status(order["id"], {"refunded"}, timeout=40) == "refunded"

    events = await topic_messages(suite.kafka.bootstrap, "payment.event", key=order["id"])
    types = [m["event_type"] for m in events]
    assert "payment.refunded" in types and "refund.succeeded" in types
    refunded = next(m for m in events if m["event_type"] == "payment.refunded")
    assert refunded["payload"]["amount_refunded"] == 2500

    def refund_mail() -> list[Any]:
        return [
            m
            for m in suite.stack.smtp.messages()
            if buyer.email in str(m["To"]) and "Refund" in str(m["Subject"])
        ]

    assert len(await wait_for(refund_mail, timeout=40)) == 1


@pytest.mark.slow
async def test_payment_service_killed_between_recording_a_refund_and_the_answer_refunds_once(
    suite: Suite, http: httpx.AsyncClient
) -> None:
    buyer = await paying_customer(http)
    paid = await payment(buyer, 1000)
    stripe = suite.stack.stripe
    service = suite.procs["payment"]
    stripe.pause()  # the refund call will hang at the provider...
    try:
        hanging = asyncio.create_task(
            post(buyer, f"/payments/{paid['id']}/refunds", {"amount": 700})
        )

        async def recorded() -> list[dict[str, Any]] | None:
            r = await buyer.http.get(f"/payments/{paid['id']}/refunds", headers=buyer.headers)
            items = r.json()["items"] if r.status_code == 200 else []
            return items or None

        [refund] = await wait_for(recorded, timeout=20)
        assert refund["status"] == "pending"
        await asyncio.sleep(0.5)  # the request is on the wire
        service.kill()  # ...and payment-service dies before any answer
    finally:
        stripe.resume()
    await asyncio.gather(hanging, return_exceptions=True)
    service.restart()

    async def settled_refund() -> dict[str, Any] | None:
        r = await buyer.http.get(f"/payments/{paid['id']}/refunds", headers=buyer.headers)
        items = r.json()["items"] if r.status_code == 200 else []
        return items[0] if items and items[0]["status"] != "pending" else None

    done = await wait_for(settled_refund, timeout=90)
    assert (done["id"], done["status"]) == (refund["id"], "succeeded")
    at_provider = provider_refunds(suite, paid["provider_reference"])
    assert [(r["amount"], r["metadata"].get("refund_id")) for r in at_provider] == [
        (700, refund["id"])
    ]
    partly = await payment_settled(buyer, paid["id"], {"partially_refunded"})
    assert partly["amount_refunded"] == 700
