"""order.create in, one PaymentIntent at localstripe, payment.event out — once, whatever happens."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from payment_tests_support import (
    LiveServer,
    Orders,
    PaymentEvents,
    Stripe,
    UserServiceStandIn,
    access_token,
    payment_for_order,
)
from sqlalchemy import select

from paygate_common.auth import SigningKey
from paygate_common.events import ORDER_CREATE, EventEnvelope
from paygate_devstack.events_testing import consumed, wait_for
from payment_service.settings import Settings
from payment_service.store.tables import payments

FINAL = {"succeeded", "failed", "requires_action", "cancelled"}


@dataclass
class Checkout:
    """payment-service running, and what a checkout test drives it through: customers at
    localstripe and the user-service stand-in, order.create in, payment rows and events out."""

    service: LiveServer
    users: UserServiceStandIn
    stripe: Stripe
    orders: Orders
    events: PaymentEvents
    db: Any
    signing_key: SigningKey

    async def customer(self, payment_method: str = "pm_card_visa") -> tuple[uuid.UUID, str]:
        """A user whose saved method is `payment_method` at a new Stripe customer: (user, customer)."""
        customer, pm = await self.stripe.customer_with(payment_method)
        return self.users.add_user(pm, customer), customer

    async def order(self, user_id: uuid.UUID, **fields: Any) -> tuple[EventEnvelope, uuid.UUID]:
        """Publish an order.create for the user: (the envelope, the order id)."""
        order = await self.orders.create(user_id, **fields)
        return order, uuid.UUID(order.aggregate_id)

    async def settled(self, order_id: uuid.UUID) -> Any:
        """The order's payment once it is in a final state."""

        async def check() -> Any:
            row = await payment_for_order(self.db, order_id)
            return row if row is not None and row.status in FINAL else None

        return await wait_for(check, timeout=25)

    async def read(
        self, payment_id: uuid.UUID, user_id: uuid.UUID | None, role: str = "customer"
    ) -> httpx.Response:
        """GET /payments/{id} as that user (None: without a token)."""
        headers = {}
        if user_id is not None:
            headers["Authorization"] = f"Bearer {access_token(self.signing_key, user_id, role)}"
        async with httpx.AsyncClient(base_url=self.service.url) as client:
            return await client.get(f"/payments/{payment_id}", headers=headers)


@pytest.fixture
def checkout(
    payment_service: LiveServer,
    user_service: UserServiceStandIn,
    stripe_api: Stripe,
    orders: Orders,
    payment_events: PaymentEvents,
    db_sessionmaker: Any,
    signing_key: SigningKey,
) -> Checkout:
    return Checkout(
        payment_service,
        user_service,
        stripe_api,
        orders,
        payment_events,
        db_sessionmaker,
        signing_key,
    )


async def test_a_visa_order_is_charged_once_and_payment_succeeded_is_published(
    checkout: Checkout,
) -> None:
    user_id, customer = await checkout.customer()
    _, order_id = await checkout.order(user_id, amount=2500)
    payment = await checkout.settled(order_id)

    assert payment.status == "succeeded"
    intents = await checkout.stripe.intents_for(payment.id)
    assert [pi["id"] for pi in intents] == [payment.provider_reference]
    assert intents[0]["amount"] == 2500 and intents[0]["customer"] == customer
    events = await checkout.events.for_order(order_id)
    assert [(key, e.event_type) for key, e in events] == [(str(order_id), "payment.succeeded")]
    assert events[0][1].payload["provider_reference"] == payment.provider_reference

    owner = await checkout.read(payment.id, user_id)
    stranger = await checkout.read(payment.id, uuid.uuid4())
    admin = await checkout.read(payment.id, uuid.uuid4(), "admin")
    anonymous = await checkout.read(payment.id, None)
    assert owner.status_code == 200, owner.text
    body = owner.json()
    assert body["status"] == "succeeded" and body["order_id"] == str(order_id)
    assert body["amount"] == 2500 and body["currency"] == "usd"
    assert [a["status"] for a in body["attempts"]] == ["succeeded"]
    assert body["attempts"][0]["idempotency_key"] == f"paygate-{payment.id}-1"
    assert stranger.status_code == 404
    assert stranger.headers["content-type"].startswith("application/problem+json")
    assert admin.status_code == 200
    assert anonymous.status_code == 401


async def test_a_declined_card_fails_the_payment_with_the_decline_code(checkout: Checkout) -> None:
    user_id, _ = await checkout.customer("pm_card_chargeCustomerFail")
    _, order_id = await checkout.order(user_id)
    payment = await checkout.settled(order_id)

    assert payment.status == "failed"
    assert payment.failure_code == "card_declined"
    assert payment.failure_message
    events = await checkout.events.for_order(order_id)
    assert [e.event_type for _, e in events] == ["payment.failed"]
    assert events[0][1].payload["failure_code"] == "card_declined"


async def test_a_3ds_card_requires_action_and_no_client_secret_leaks(checkout: Checkout) -> None:
    user_id, _ = await checkout.customer(await checkout.stripe.card_method("4000002500003155"))
    _, order_id = await checkout.order(user_id)
    payment = await checkout.settled(order_id)

    assert payment.status == "requires_action"
    assert payment.next_action and payment.next_action["type"] == "use_stripe_sdk"
    events = await checkout.events.for_order(order_id)
    assert [e.event_type for _, e in events] == ["payment.requires_action"]
    read = await checkout.read(payment.id, user_id)
    everything = json.dumps(
        [dict(payment._mapping), events[0][1].payload, read.json()], default=str
    )
    assert "secret" not in everything
    assert read.json()["next_action"] == payment.next_action


async def test_the_same_order_create_twice_makes_one_payment_and_one_intent(
    checkout: Checkout,
) -> None:
    user_id, _ = await checkout.customer()
    order, order_id = await checkout.order(user_id)
    payment = await checkout.settled(order_id)
    duplicates = consumed(Settings.service_name, ORDER_CREATE, "duplicate")
    applied = consumed(Settings.service_name, ORDER_CREATE, "applied")
    # Redelivered by Kafka (same event id), and re-published by a confused producer (new id).
    await checkout.orders.send(ORDER_CREATE, order)
    again = EventEnvelope(**{**order.model_dump(), "event_id": uuid.uuid4()})
    await checkout.orders.send(ORDER_CREATE, again)
    # Both were consumed: the inbox knew the first, the intake applied the second (a new id).
    await wait_for(
        lambda: (
            consumed(Settings.service_name, ORDER_CREATE, "duplicate") > duplicates
            and consumed(Settings.service_name, ORDER_CREATE, "applied") > applied
        )
    )

    async with checkout.db() as session:
        rows = (
            await session.execute(select(payments).where(payments.c.order_id == order_id))
        ).all()
    assert [row.id for row in rows] == [payment.id]  # no second payment to charge
    assert payment.status == "succeeded"
    assert len(await checkout.stripe.intents_for(payment.id)) == 1
    events = await checkout.events.for_order(order_id, count=2, timeout=2)
    assert [e.event_type for _, e in events] == ["payment.succeeded"]


async def test_an_order_waits_while_user_service_is_down_and_is_charged_once_it_is_back(
    checkout: Checkout,
) -> None:
    user_id, _ = await checkout.customer()
    await checkout.users.server.stop()
    try:
        _, order_id = await checkout.order(user_id)
        recorded = await wait_for(lambda: payment_for_order(checkout.db, order_id))
        released = {recorded.next_attempt_at}

        async def given_back_twice() -> Any:
            # the executor leased it, could not read the context and gave it back, twice over
            row = await payment_for_order(checkout.db, order_id)
            released.add(row.next_attempt_at)
            return row if len(released) >= 3 else None

        waiting = await wait_for(given_back_twice, timeout=30)
        assert recorded.status == "created" and waiting.status == "created"
        assert waiting.attempt_count == 0  # nothing was sent to the provider
    finally:
        await checkout.users.server.start()
    payment = await checkout.settled(order_id)
    assert payment.status == "succeeded"
    assert len(await checkout.stripe.intents_for(payment.id)) == 1


async def test_an_order_create_carrying_the_context_is_charged_with_user_service_down(
    checkout: Checkout,
) -> None:
    """order-service read the context when it took the order: no call to user-service here."""
    customer, pm = await checkout.stripe.customer_with("pm_card_visa")
    method_id = uuid.uuid4()
    user_id = uuid.uuid4()  # unknown to the stand-in too: a call could only fail
    calls = checkout.users.calls
    await checkout.users.server.stop()
    try:
        order = await checkout.orders.create(
            user_id,
            amount=3100,
            payment_method_id=method_id,
            payment_method_provider="stripe",
            payment_method_token=pm,
            provider_customer_id=customer,
        )
        order_id = uuid.UUID(order.aggregate_id)
        payment = await checkout.settled(order_id)
    finally:
        await checkout.users.server.start()
    assert payment.status == "succeeded", payment.failure_message
    assert payment.payment_method_id == method_id
    assert (payment.payment_method_token, payment.provider_customer_id) == (pm, customer)
    (intent,) = await checkout.stripe.intents_for(payment.id)
    assert (intent["payment_method"], intent["customer"], intent["amount"]) == (pm, customer, 3100)
    assert checkout.users.calls == calls
    events = await checkout.events.for_order(order_id)
    assert [e.event_type for _, e in events] == ["payment.succeeded"]


async def test_an_old_shape_order_create_still_asks_user_service_for_the_context(
    checkout: Checkout,
) -> None:
    customer, pm = await checkout.stripe.customer_with("pm_card_visa")
    user_id = checkout.users.add_user(pm, customer)
    calls = checkout.users.calls
    order_id = uuid.uuid4()
    # As an order-service of before this change wrote it: none of the context fields.
    old_shape = EventEnvelope(
        event_type="order.created",
        version=1,
        producer="order-service",
        aggregate_id=str(order_id),
        payload={
            "order_id": str(order_id),
            "user_id": str(user_id),
            "amount": 1300,
            "currency": "usd",
            "description": None,
            "payment_method_id": None,
        },
    )
    await checkout.orders.send(ORDER_CREATE, old_shape)
    payment = await checkout.settled(order_id)
    assert payment.status == "succeeded", payment.failure_message
    assert payment.payment_method_token is None and payment.provider_customer_id is None
    assert checkout.users.calls > calls
    (intent,) = await checkout.stripe.intents_for(payment.id)
    assert (intent["payment_method"], intent["customer"]) == (pm, customer)


async def test_a_cancelled_order_that_was_not_charged_yet_is_never_charged(
    checkout: Checkout,
) -> None:
    user_id, _ = await checkout.customer()
    await checkout.users.server.stop()  # hold the payment in `created`
    try:
        _, order_id = await checkout.order(user_id)
        await wait_for(lambda: payment_for_order(checkout.db, order_id))
        await checkout.orders.cancel(order_id, user_id)
        payment = await checkout.settled(order_id)
    finally:
        await checkout.users.server.start()
    await asyncio.sleep(1.0)

    assert payment.status == "cancelled"
    assert (await payment_for_order(checkout.db, order_id)).status == "cancelled"
    assert await checkout.stripe.intents_for(payment.id) == []
    events = await checkout.events.for_order(order_id)
    assert [e.event_type for _, e in events] == ["payment.cancelled"]


@pytest.mark.parametrize("path", ["/health", "/ready"])
async def test_the_service_is_live_and_ready(payment_service: LiveServer, path: str) -> None:
    async with httpx.AsyncClient(base_url=payment_service.url) as client:
        response = await client.get(path)
    assert response.status_code == 200, response.text
