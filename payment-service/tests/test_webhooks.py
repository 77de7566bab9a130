"""POST /webhooks/stripe: verified signatures only, each event applied once, never backwards."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx
import pytest
from payment_tests_support import (
    OLD_WEBHOOK_SECRET,
    WEBHOOK_SECRET,
    LiveServer,
    Orders,
    Stripe,
    UserServiceStandIn,
    payment_for_order,
)
from sqlalchemy import func, select

from paygate_common.db import unit_of_work
from paygate_common.events import OrderCreated
from paygate_devstack.events_testing import wait_for
from payment_service.domain import payments as domain
from payment_service.domain.webhooks import (
    InvalidSignature,
    StaleSignature,
    verify_stripe_signature,
)
from payment_service.store import payments as store
from payment_service.store.tables import outbox, webhook_events


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def intent_event(payment: Any, status: str, event_type: str) -> bytes:
    return json.dumps(
        {
            "id": f"evt_{uuid.uuid4().hex}",
            "object": "event",
            "type": event_type,
            "data": {
                "object": {
                    "id": payment.provider_reference or f"pi_{uuid.uuid4().hex[:14]}",
                    "object": "payment_intent",
                    "status": status,
                    "amount": payment.amount,
                    "currency": payment.currency,
                    "metadata": {"payment_id": str(payment.id)},
                }
            },
        }
    ).encode()


async def processing_payment(db_sessionmaker: Any) -> Any:
    """A payment the provider reported as `processing` (pending until a webhook)."""
    order = OrderCreated(order_id=uuid.uuid4(), user_id=uuid.uuid4(), amount=777, currency="usd")
    async with unit_of_work(db_sessionmaker) as session:
        await domain.record_order(session, order, provider="stripe")
        row = await store.get_payment_by_order(session, order.order_id)
        # Claimed by nobody: move it straight to pending as if the provider said processing.
        return await store.transition(
            session,
            row.id,
            to="pending",
            from_states=("created",),
            provider_reference=f"pi_{uuid.uuid4().hex[:14]}",
        )


async def events_for(db_sessionmaker: Any, order_id: uuid.UUID) -> list[str]:
    async with db_sessionmaker() as session:
        rows = await session.execute(
            select(outbox.c.event_type).where(outbox.c.key == str(order_id)).order_by(outbox.c.id)
        )
        return [r[0] for r in rows]


async def post(server: LiveServer, body: bytes, signature: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    async with httpx.AsyncClient(base_url=server.url) as client:
        return await client.post("/webhooks/stripe", content=body, headers=headers)


def test_signature_verification_accepts_any_matching_v1_and_rejects_the_rest() -> None:
    body = b'{"id": "evt_1"}'
    now = 1_800_000_000
    good = sign(body, "whsec_new", now)
    bad = sign(body, "whsec_wrong", now)
    mac_good = good.split("v1=")[1]
    mac_bad = bad.split("v1=")[1]
    rotated = f"t={now},v1={mac_bad},v1={mac_good}"
    assert verify_stripe_signature(body, rotated, ["whsec_new"], tolerance_seconds=300, now=now)
    assert verify_stripe_signature(
        body, good, ["whsec_old", "whsec_new"], tolerance_seconds=300, now=now + 299
    )
    with pytest.raises(InvalidSignature):
        verify_stripe_signature(body, bad, ["whsec_new"], tolerance_seconds=300, now=now)
    with pytest.raises(InvalidSignature):
        verify_stripe_signature(body + b" ", good, ["whsec_new"], tolerance_seconds=300, now=now)
    with pytest.raises(InvalidSignature):
        verify_stripe_signature(body, f"t={now}", ["whsec_new"], tolerance_seconds=300, now=now)
    with pytest.raises(InvalidSignature):
        verify_stripe_signature(body, None, ["whsec_new"], tolerance_seconds=300, now=now)
    for skew in (-301, 301):
        with pytest.raises(StaleSignature):
            verify_stripe_signature(
                body, good, ["whsec_new"], tolerance_seconds=300, now=now + skew
            )


async def test_a_genuine_succeeded_webhook_settles_a_processing_payment_once(
    payment_service: LiveServer, db_sessionmaker: Any
) -> None:
    payment = await processing_payment(db_sessionmaker)
    body = intent_event(payment, "succeeded", "payment_intent.succeeded")

    first = await post(payment_service, body, sign(body, WEBHOOK_SECRET))
    second = await post(payment_service, body, sign(body, WEBHOOK_SECRET))

    assert (first.status_code, first.json()) == (200, {"received": True, "duplicate": False})
    assert (second.status_code, second.json()) == (200, {"received": True, "duplicate": True})
    settled = await payment_for_order(db_sessionmaker, payment.order_id)
    assert settled.status == "succeeded"
    assert await events_for(db_sessionmaker, payment.order_id) == ["payment.succeeded"]


async def test_a_late_failure_webhook_never_moves_a_succeeded_payment_back(
    payment_service: LiveServer, db_sessionmaker: Any
) -> None:
    payment = await processing_payment(db_sessionmaker)
    ok = intent_event(payment, "succeeded", "payment_intent.succeeded")
    late = intent_event(payment, "requires_payment_method", "payment_intent.payment_failed")
    assert (await post(payment_service, ok, sign(ok, WEBHOOK_SECRET))).status_code == 200
    assert (await post(payment_service, late, sign(late, WEBHOOK_SECRET))).status_code == 200
    assert (await payment_for_order(db_sessionmaker, payment.order_id)).status == "succeeded"
    assert await events_for(db_sessionmaker, payment.order_id) == ["payment.succeeded"]


@pytest.mark.parametrize(
    ("make_signature", "code"),
    [
        (lambda body: sign(body, "whsec_forged"), "invalid_signature"),
        (lambda body: sign(body, WEBHOOK_SECRET, int(time.time()) - 600), "stale_signature"),
        (lambda body: sign(body, WEBHOOK_SECRET, int(time.time()) + 600), "stale_signature"),
        (lambda body: None, "invalid_signature"),
    ],
    ids=["forged", "stale", "future", "missing"],
)
async def test_an_unverifiable_webhook_is_refused_and_changes_nothing(
    payment_service: LiveServer, db_sessionmaker: Any, make_signature: Any, code: str
) -> None:
    payment = await processing_payment(db_sessionmaker)
    body = intent_event(payment, "succeeded", "payment_intent.succeeded")

    response = await post(payment_service, body, make_signature(body))

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code
    assert (await payment_for_order(db_sessionmaker, payment.order_id)).status == "pending"
    event_id = json.loads(body)["id"]
    async with db_sessionmaker() as session:
        seen = await session.execute(
            select(func.count())
            .select_from(webhook_events)
            .where(webhook_events.c.event_id == event_id)
        )
        assert seen.scalar_one() == 0


async def test_rotation_two_v1_values_where_only_the_second_matches_is_accepted(
    payment_service: LiveServer, db_sessionmaker: Any
) -> None:
    payment = await processing_payment(db_sessionmaker)
    body = intent_event(payment, "succeeded", "payment_intent.succeeded")
    t = int(time.time())
    wrong = sign(body, "whsec_someone_else", t).split("v1=")[1]
    right = sign(body, WEBHOOK_SECRET, t).split("v1=")[1]

    response = await post(payment_service, body, f"t={t},v1={wrong},v1={right}")

    assert response.status_code == 200
    assert (await payment_for_order(db_sessionmaker, payment.order_id)).status == "succeeded"


async def test_the_previous_secret_is_still_accepted_during_rotation(
    payment_service: LiveServer, db_sessionmaker: Any
) -> None:
    payment = await processing_payment(db_sessionmaker)
    body = intent_event(payment, "canceled", "payment_intent.canceled")
    response = await post(payment_service, body, sign(body, OLD_WEBHOOK_SECRET))
    assert response.status_code == 200
    assert (await payment_for_order(db_sessionmaker, payment.order_id)).status == "cancelled"


async def test_a_webhook_whose_amount_disagrees_is_ignored(
    payment_service: LiveServer, db_sessionmaker: Any
) -> None:
    payment = await processing_payment(db_sessionmaker)
    event = json.loads(intent_event(payment, "succeeded", "payment_intent.succeeded"))
    event["data"]["object"]["amount"] = 1
    body = json.dumps(event).encode()
    assert (await post(payment_service, body, sign(body, WEBHOOK_SECRET))).status_code == 200
    assert (await payment_for_order(db_sessionmaker, payment.order_id)).status == "pending"


async def test_localstripe_delivers_signed_webhooks_that_the_service_accepts(
    payment_service: LiveServer,
    user_service: UserServiceStandIn,
    stripe_api: Stripe,
    orders: Orders,
    db_sessionmaker: Any,
) -> None:
    customer, pm = await stripe_api.customer_with("pm_card_visa")
    order = await orders.create(user_service.add_user(pm, customer))
    order_id = uuid.UUID(order.aggregate_id)

    async def delivered() -> Any:
        payment = await payment_for_order(db_sessionmaker, order_id)
        if payment is None:
            return None
        async with db_sessionmaker() as session:
            rows = await session.execute(
                select(webhook_events.c.event_type).where(webhook_events.c.payment_id == payment.id)
            )
            return [r[0] for r in rows]

    assert await wait_for(delivered, timeout=20) == ["payment_intent.succeeded"]
    # The webhook arrived after the executor recorded the outcome: one event, not two.
    assert await events_for(db_sessionmaker, order_id) == ["payment.succeeded"]


# --- capture, cancel and refund webhooks: the same state machine, applied once -----------------


def event(event_type: str, obj: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "id": f"evt_{uuid.uuid4().hex}",
            "object": "event",
            "type": event_type,
            "data": {"object": obj},
        }
    ).encode()


async def delivered(server: LiveServer, body: bytes) -> None:
    response = await post(server, body, sign(body, WEBHOOK_SECRET))
    assert response.status_code == 200, response.text


async def captured_payment(db_sessionmaker: Any, amount: int = 1000) -> Any:
    """A succeeded payment (as if its charge had been answered), with its order id."""
    payment = await processing_payment(db_sessionmaker)
    async with unit_of_work(db_sessionmaker) as session:
        return await store.transition(
            session,
            payment.id,
            to="succeeded",
            from_states=("pending",),
            amount_captured=payment.amount,
        )


async def test_amount_capturable_updated_authorises_and_our_own_answer_adds_nothing(
    payment_service: LiveServer, db_sessionmaker: Any
) -> None:
    payment = await processing_payment(db_sessionmaker)
    obj = json.loads(intent_event(payment, "requires_capture", "x"))["data"]["object"]
    obj["amount_capturable"] = payment.amount
    await delivered(payment_service, event("payment_intent.amount_capturable_updated", obj))
    authorised = await payment_for_order(db_sessionmaker, payment.order_id)
    assert (authorised.status, authorised.amount_capturable) == ("requires_capture", 777)
    assert authorised.capture_before is not None

    # The executor's own answer for the same transition comes second: nothing changes.
    from payment_service.connectors.stripe import StripeConnector

    async with unit_of_work(db_sessionmaker) as session:
        again = await domain.apply_result(
            session, payment.id, StripeConnector().parse_authorize_response(obj)
        )
    assert again is None
    assert await events_for(db_sessionmaker, payment.order_id) == ["payment.requires_capture"]


async def test_an_authorised_event_while_our_capture_is_in_flight_changes_nothing(
    payment_service: LiveServer, db_sessionmaker: Any
) -> None:
    # PayPal sends the authorisation's event after the payer approved; if it lands while our
    # capture is on the wire it must not send the payment back (the capture's answer would
    # then find it moved and the money captured at the provider would never show).
    from payment_service.domain.states import PaymentState

    payment = await processing_payment(db_sessionmaker)
    obj = json.loads(intent_event(payment, "requires_capture", "x"))["data"]["object"]
    obj["amount_capturable"] = payment.amount
    await delivered(payment_service, event("payment_intent.amount_capturable_updated", obj))
    async with unit_of_work(db_sessionmaker) as session:
        moved = await domain.move(
            session,
            payment.id,
            to=PaymentState.CAPTURING,
            from_states=(PaymentState.REQUIRES_CAPTURE,),
        )
    assert moved is not None
    await delivered(payment_service, event("payment_intent.amount_capturable_updated", obj))
    still = await payment_for_order(db_sessionmaker, payment.order_id)
    assert still.status == "capturing"


async def test_payment_intent_canceled_voids_an_authorisation(
    payment_service: LiveServer, db_sessionmaker: Any
) -> None:
    payment = await processing_payment(db_sessionmaker)
    obj = json.loads(intent_event(payment, "requires_capture", "x"))["data"]["object"]
    await delivered(payment_service, event("payment_intent.amount_capturable_updated", obj))
    await delivered(
        payment_service, event("payment_intent.canceled", {**obj, "status": "canceled"})
    )
    cancelled = await payment_for_order(db_sessionmaker, payment.order_id)
    assert (cancelled.status, cancelled.amount_capturable) == ("cancelled", 0)
    assert await events_for(db_sessionmaker, payment.order_id) == [
        "payment.requires_capture",
        "payment.cancelled",
    ]


async def test_a_refund_webhook_and_our_own_answer_settle_the_refund_once(
    payment_service: LiveServer, db_sessionmaker: Any
) -> None:
    from payment_service.domain import refunds

    payment = await captured_payment(db_sessionmaker)
    async with unit_of_work(db_sessionmaker) as session:
        refund = await refunds.request_refund(session, payment.id, amount=300, reason=None)
        operation = await store.operation_for_refund(session, refund.id)
        # Our own call is under way (so no sender of the live service picks it up meanwhile).
        assert await store.start_operation(session, operation.id) is not None
    stripe_refund = {
        "id": f"re_{uuid.uuid4().hex[:14]}",
        "object": "refund",
        "status": "succeeded",
        "amount": 300,
        "payment_intent": payment.provider_reference,
        "metadata": {"refund_id": str(refund.id), "payment_id": str(payment.id)},
    }
    body = event("charge.refund.updated", stripe_refund)
    await delivered(payment_service, body)
    await delivered(payment_service, event("charge.refund.updated", stripe_refund))

    async with db_sessionmaker() as session:
        settled = await store.get_refund(session, refund.id)
        op = await store.get_operation(session, operation.id)
        current = await store.get_payment(session, payment.id)
    assert (settled.status, settled.provider_reference) == ("succeeded", stripe_refund["id"])
    assert op.status == "succeeded"  # nothing left to send to the provider
    assert (current.status, current.amount_refunded, current.amount_refund_pending) == (
        "partially_refunded",
        300,
        0,
    )
    # Our own answer arrives second: nothing is applied twice.
    from payment_service.connectors.stripe import StripeConnector

    async with unit_of_work(db_sessionmaker) as session:
        result = StripeConnector().parse_refund_response(stripe_refund)
        assert await refunds.settle_refund(session, refund.id, result) is None
    assert await events_for(db_sessionmaker, payment.order_id) == [
        "refund.pending",
        "payment.partially_refunded",
        "refund.succeeded",
    ]


async def test_a_refund_made_at_the_provider_is_recorded_from_charge_refunded(
    payment_service: LiveServer, db_sessionmaker: Any
) -> None:
    payment = await captured_payment(db_sessionmaker)
    outside = {
        "id": f"re_{uuid.uuid4().hex[:14]}",
        "object": "refund",
        "status": "succeeded",
        "amount": payment.amount,
        "payment_intent": payment.provider_reference,
        "metadata": {},
    }
    charge = {
        "id": f"ch_{uuid.uuid4().hex[:14]}",
        "object": "charge",
        "payment_intent": payment.provider_reference,
        "amount": payment.amount,
        "amount_refunded": payment.amount,
        "refunds": {"object": "list", "data": [outside]},
    }
    await delivered(payment_service, event("charge.refunded", charge))
    await delivered(
        payment_service, event("charge.refunded", charge)
    )  # a new event id, same refund
    async with db_sessionmaker() as session:
        current = await store.get_payment(session, payment.id)
        listed = await store.list_refunds(session, payment.id)
    assert (current.status, current.amount_refunded) == ("refunded", payment.amount)
    assert [(r.source, r.amount, r.status) for r in listed] == [
        ("provider", payment.amount, "succeeded")
    ]
    assert (await events_for(db_sessionmaker, payment.order_id)).count("payment.refunded") == 1
