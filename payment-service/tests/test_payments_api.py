"""The payments API against localstripe: direct payments, manual capture, void, refunds, ownership."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from payment_tests_support import (
    LiveServer,
    Merchant,
    Stripe,
    UserServiceStandIn,
    access_token,
)
from sqlalchemy import select

from paygate_common.auth import SigningKey
from paygate_devstack.events_testing import wait_for
from payment_service.store.tables import outbox


@pytest.fixture
async def merchant(
    payment_service: LiveServer,
    signing_key: SigningKey,
    user_service: UserServiceStandIn,
    stripe_api: Stripe,
) -> Merchant:
    customer, pm = await stripe_api.customer_with("pm_card_visa")
    return Merchant(payment_service, signing_key, user_service.add_user(pm, customer))


async def authorised(merchant: Merchant, amount: int = 1000) -> dict[str, Any]:
    payment = await merchant.pay(amount, capture_method="manual")
    assert payment["status"] == "processing" and payment["order_id"] is None
    return await merchant.settled(payment["id"])


async def captured(merchant: Merchant, amount: int = 1000) -> dict[str, Any]:
    payment = await merchant.pay(amount)
    return await merchant.settled(payment["id"])


async def audit_actions(db_sessionmaker: Any, payment_id: str) -> list[tuple[str, str]]:
    async with db_sessionmaker() as session:
        rows = await session.execute(
            select(outbox.c.payload)
            .where(outbox.c.topic == "audit.event", outbox.c.key == payment_id)
            .order_by(outbox.c.id)
        )
        return [(p["payload"]["action"], p["payload"]["outcome"]) for (p,) in rows]


async def payment_events(db_sessionmaker: Any, payment_id: str) -> list[str]:
    async with db_sessionmaker() as session:
        rows = await session.execute(
            select(outbox.c.event_type)
            .where(outbox.c.topic == "payment.event", outbox.c.key == payment_id)
            .order_by(outbox.c.id)
        )
        return [r[0] for r in rows]


async def test_manual_capture_of_less_than_authorised_releases_the_rest_once(
    merchant: Merchant, stripe_api: Stripe, db_sessionmaker: Any
) -> None:
    payment = await authorised(merchant)
    assert payment["status"] == "requires_capture"
    assert (payment["amount_capturable"], payment["amount_captured"]) == (1000, 0)
    assert payment["capture_before"]

    r = await merchant.post(f"/payments/{payment['id']}/capture", {"amount": 600})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "succeeded"
    assert (body["amount_captured"], body["amount_capturable"]) == (600, 0)
    intent = await stripe_api.intent(body["provider_reference"])
    assert intent["status"] == "succeeded"

    again = await merchant.post(f"/payments/{payment['id']}/capture", {"amount": 100})
    assert again.status_code == 409 and again.json()["code"] == "invalid_state"
    assert await payment_events(db_sessionmaker, payment["id"]) == [
        "payment.requires_capture",
        "payment.succeeded",
    ]
    assert await audit_actions(db_sessionmaker, payment["id"]) == [
        ("payment.capture_requested", "succeeded"),
        ("payment.capture_requested", "failed"),
    ]


async def test_a_capture_above_the_authorisation_is_refused_and_changes_nothing(
    merchant: Merchant,
) -> None:
    payment = await authorised(merchant, 1000)
    r = await merchant.post(f"/payments/{payment['id']}/capture", {"amount": 1001})
    assert r.status_code == 422 and r.json()["code"] == "amount_exceeds_capturable"
    after = (await merchant.get(f"/payments/{payment['id']}")).json()
    assert (after["status"], after["amount_capturable"]) == ("requires_capture", 1000)


async def test_void_cancels_an_authorisation_and_nothing_is_captured_after(
    merchant: Merchant, stripe_api: Stripe, db_sessionmaker: Any
) -> None:
    payment = await authorised(merchant)
    r = await merchant.post(f"/payments/{payment['id']}/cancel")
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["amount_capturable"]) == ("cancelled", 0)
    assert (await stripe_api.intent(payment["provider_reference"]))["status"] == "canceled"

    capture = await merchant.post(f"/payments/{payment['id']}/capture")
    assert capture.status_code == 409 and capture.json()["code"] == "invalid_state"
    assert "payment.cancelled" in await payment_events(db_sessionmaker, payment["id"])
    assert ("payment.cancel_requested", "succeeded") in await audit_actions(
        db_sessionmaker, payment["id"]
    )


async def test_cancel_after_capture_is_refused(merchant: Merchant) -> None:
    payment = await authorised(merchant)
    assert (await merchant.post(f"/payments/{payment['id']}/capture")).status_code == 200
    r = await merchant.post(f"/payments/{payment['id']}/cancel")
    assert r.status_code == 409 and r.json()["code"] == "invalid_state"
    assert (await merchant.get(f"/payments/{payment['id']}")).json()["status"] == "succeeded"


async def test_partial_refunds_then_the_rest_make_the_payment_refunded(
    merchant: Merchant, stripe_api: Stripe, db_sessionmaker: Any
) -> None:
    payment = await captured(merchant, 1000)
    assert (payment["status"], payment["amount_captured"]) == ("succeeded", 1000)
    path = f"/payments/{payment['id']}/refunds"

    first = await merchant.post(path, {"amount": 300, "reason": "damaged"})
    second = await merchant.post(path, {"amount": 300})
    assert (first.status_code, second.status_code) == (201, 201), first.text
    assert first.json()["status"] == "succeeded" and first.json()["reason"] == "damaged"
    partly = (await merchant.get(f"/payments/{payment['id']}")).json()
    assert (partly["status"], partly["amount_refunded"]) == ("partially_refunded", 600)

    too_much = await merchant.post(path, {"amount": 500})
    assert too_much.status_code == 422 and too_much.json()["code"] == "refund_exceeds_captured"

    rest = await merchant.post(path, {})
    assert rest.status_code == 201 and rest.json()["amount"] == 400
    done = (await merchant.get(f"/payments/{payment['id']}")).json()
    assert (done["status"], done["amount_refunded"]) == ("refunded", 1000)

    listed = (await merchant.get(path)).json()["items"]
    assert sorted(r["amount"] for r in listed) == [300, 300, 400]
    one = await merchant.get(first.headers["location"])
    assert (one.status_code, one.json()["id"]) == (200, first.json()["id"])
    at_provider = await stripe_api.refunds_for(payment["provider_reference"])
    assert sorted(r["amount"] for r in at_provider) == [300, 300, 400]
    assert {r["metadata"]["refund_id"] for r in at_provider} == {r["id"] for r in listed}
    events = await payment_events(db_sessionmaker, payment["id"])
    assert events.count("refund.succeeded") == 3 and events.count("refund.pending") == 3
    assert events[-2:] == ["payment.refunded", "refund.succeeded"]
    assert [a for a, _ in await audit_actions(db_sessionmaker, payment["id"])] == [
        "payment.refund_requested"
    ] * 4


async def test_twenty_concurrent_refunds_never_exceed_what_was_captured(
    merchant: Merchant, stripe_api: Stripe
) -> None:
    payment = await captured(merchant, 1000)
    path = f"/payments/{payment['id']}/refunds"
    answers = await asyncio.gather(*(merchant.post(path, {"amount": 100}) for _ in range(20)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [201] * 10 + [422] * 10, [r.text for r in answers if r.status_code >= 500]
    assert {r.json()["code"] for r in answers if r.status_code == 422} == {
        "refund_exceeds_captured"
    }

    async def all_settled() -> list[dict[str, Any]] | None:
        items = (await merchant.get(path)).json()["items"]
        return items if all(r["status"] == "succeeded" for r in items) else None

    items = await wait_for(all_settled, timeout=30)
    assert sum(r["amount"] for r in items) == 1000
    at_provider = await stripe_api.refunds_for(payment["provider_reference"])
    assert len(at_provider) == 10 and sum(r["amount"] for r in at_provider) == 1000
    final = (await merchant.get(f"/payments/{payment['id']}")).json()
    assert (final["status"], final["amount_refunded"]) == ("refunded", 1000)


async def test_a_refund_retried_with_its_idempotency_key_is_made_once(
    merchant: Merchant, stripe_api: Stripe
) -> None:
    payment = await captured(merchant, 1000)
    path = f"/payments/{payment['id']}/refunds"
    first = await merchant.post(path, {"amount": 250}, key="refund-once")
    again = await merchant.post(path, {"amount": 250}, key="refund-once")
    other = await merchant.post(path, {"amount": 300}, key="refund-once")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert len(await stripe_api.refunds_for(payment["provider_reference"])) == 1


async def test_nobody_else_sees_or_acts_on_a_payment(
    merchant: Merchant,
    payment_service: LiveServer,
    signing_key: SigningKey,
    user_service: UserServiceStandIn,
    db_sessionmaker: Any,
) -> None:
    payment = await authorised(merchant)
    stranger = Merchant(payment_service, signing_key, user_service.add_user("pm_card_visa", None))
    pid = payment["id"]
    answers = [
        await stranger.get(f"/payments/{pid}"),
        await stranger.get(f"/payments/{pid}/refunds"),
        await stranger.post(f"/payments/{pid}/capture"),
        await stranger.post(f"/payments/{pid}/cancel"),
        await stranger.post(f"/payments/{pid}/refunds", {"amount": 100}),
        await stranger.get(f"/payments?cursor={pid}"),
        await stranger.get(f"/payments/{pid}/refunds/{uuid.uuid4()}"),
    ]
    assert [r.status_code for r in answers] == [404] * 7
    assert {r.json()["code"] for r in answers} == {"payment_not_found"}
    listing = (await stranger.get("/payments")).json()
    assert pid not in {p["id"] for p in listing["items"]}
    # Nothing moved, and the attempts were audited as denied.
    assert (await merchant.get(f"/payments/{pid}")).json()["status"] == "requires_capture"
    assert sorted(await audit_actions(db_sessionmaker, pid)) == sorted(
        [
            ("payment.capture_requested", "denied"),
            ("payment.cancel_requested", "denied"),
            ("payment.refund_requested", "denied"),
        ]
    )
    admin = Merchant(payment_service, signing_key, uuid.uuid4())
    admin.headers = {"Authorization": f"Bearer {access_token(signing_key, uuid.uuid4(), 'admin')}"}
    assert (await admin.get(f"/payments/{pid}")).status_code == 200


async def test_creation_checks_method_ownership_minimum_amount_and_provider(
    merchant: Merchant, user_service: UserServiceStandIn
) -> None:
    someone_else = user_service.add_user("pm_card_visa", None)
    their_method = user_service.users[someone_else]["payment_method"]["id"]
    cases = [
        (
            {"amount": 1000, "currency": "usd", "payment_method_id": their_method},
            "payment_method_not_found",
        ),
        (
            {"amount": 1000, "currency": "usd", "payment_method_id": str(uuid.uuid4())},
            "payment_method_not_found",
        ),
        ({"amount": 49, "currency": "usd"}, "amount_below_minimum"),
        ({"amount": 29, "currency": "gbp"}, "amount_below_minimum"),
        (
            {
                "amount": 1000,
                "currency": "usd",
                "provider": "paypal",
                "payment_method": "pm_card_visa",
            },
            "payment_method_provider_mismatch",
        ),
        ({"amount": 1000, "currency": "xxx"}, "validation_error"),
        (
            {
                "amount": 1000,
                "currency": "usd",
                "payment_method": "pm_card_visa",
                "payment_method_id": their_method,
            },
            "validation_error",
        ),
    ]
    for body, code in cases:
        r = await merchant.post("/payments", body)
        assert (r.status_code, r.json()["code"]) == (422, code), (body, r.text)
    # Someone else's method and a method that does not exist answer exactly alike.
    a = await merchant.post("/payments", cases[0][0])
    b = await merchant.post("/payments", cases[1][0])
    assert a.json()["detail"] == b.json()["detail"]
    ok = await merchant.post("/payments", {"amount": 50, "currency": "usd"})
    assert ok.status_code == 202


async def test_currency_is_normalised_and_a_replay_compares_the_normalised_body(
    merchant: Merchant, stripe_api: Stripe
) -> None:
    first = await merchant.post("/payments", {"amount": 777, "currency": "USD"}, key="pay-once")
    again = await merchant.post("/payments", {"amount": 777, "currency": "usd"}, key="pay-once")
    other = await merchant.post("/payments", {"amount": 778, "currency": "usd"}, key="pay-once")
    assert first.status_code == 202 and first.json()["currency"] == "usd"
    assert again.status_code == 202 and again.json()["id"] == first.json()["id"]
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    paid = await merchant.settled(first.json()["id"])
    assert paid["status"] == "succeeded"
    assert len(await stripe_api.intents_for(uuid.UUID(paid["id"]))) == 1


async def test_a_direct_provider_token_is_charged_without_a_saved_method(
    payment_service: LiveServer, signing_key: SigningKey, stripe_api: Stripe
) -> None:
    # A user user-service has never heard of: the token is all that is needed.
    merchant = Merchant(payment_service, signing_key, uuid.uuid4())
    payment = await merchant.pay(
        1500,
        payment_method="pm_card_visa",
        description="Order #7",
        metadata={"cart": "7"},
        return_url="https://shop.example.com/done",
    )
    settled = await merchant.settled(payment["id"])
    assert settled["status"] == "succeeded" and settled["amount_captured"] == 1500
    assert settled["metadata"] == {"cart": "7"}
    listing = (await merchant.get("/payments")).json()
    assert [p["id"] for p in listing["items"]] == [payment["id"]]


async def test_a_saved_method_is_read_once_at_creation_and_charged_with_its_customer(
    merchant: Merchant, user_service: UserServiceStandIn, stripe_api: Stripe
) -> None:
    calls = user_service.calls
    payment = await merchant.pay(1700)  # the user's saved (default) method
    settled = await merchant.settled(payment["id"])
    assert settled["status"] == "succeeded"
    # The check at POST /payments read the token: the executor did not ask again.
    assert user_service.calls == calls + 1
    saved = user_service.users[merchant.user_id]
    (intent,) = await stripe_api.intents_for(uuid.UUID(payment["id"]))
    assert (intent["payment_method"], intent["customer"]) == (
        saved["payment_method"]["token"],
        saved["provider_customer_id"],
    )


async def test_racing_captures_and_a_racing_cancel_leave_exactly_one_winner(
    merchant: Merchant, stripe_api: Stripe
) -> None:
    payment = await authorised(merchant)
    pid = payment["id"]
    answers = await asyncio.gather(
        *(merchant.post(f"/payments/{pid}/capture", {"amount": 500}) for _ in range(5)),
        merchant.post(f"/payments/{pid}/cancel"),
    )
    codes = [r.status_code for r in answers]
    assert sorted(codes) == [200] + [409] * 5, [r.text for r in answers]
    final = (await merchant.get(f"/payments/{pid}")).json()
    intent = await stripe_api.intent(payment["provider_reference"])
    if codes[-1] == 200:  # the cancel won
        assert (final["status"], intent["status"]) == ("cancelled", "canceled")
    else:
        assert (final["status"], final["amount_captured"]) == ("succeeded", 500)
        assert intent["status"] == "succeeded"
