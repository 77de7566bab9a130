"""Every event topic lands in the trail through Kafka: in order, with the gateway's request id,
once per event id, and with nothing sensitive left in the stored rows."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from paygate_common.audit import Actor, record_audit
from paygate_common.events import (
    ConfigChanged,
    EventEnvelope,
    OrderCreated,
    PaymentEvent,
    PaymentStatus,
    UserRegistered,
    new_event,
)
from paygate_common.events.models import AuditAction, AuditOutcome
from paygate_common.events.topics import (
    AUDIT_EVENT,
    CONFIG_CHANGED,
    ORDER_CREATE,
    PAYMENT_EVENT,
    USER_REGISTERED,
)
from paygate_common.logging import request_id_var
from paygate_common.masking import CARD as CARD_PLACEHOLDER
from paygate_common.masking import mask_text
from paygate_common.outbox import OutboxRelay
from paygate_devstack.events_testing import create_schema_with_outbox

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXRoYXQtaXMtbG9uZw"
CARD = "4242424242424242"
CARD_GROUPED = "4000 0566 5566 5556"
API_KEY = "pgk_live_3xAmPlEk3yV4lu3_9f8e7d6c"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
STRIPE_KEY = "sk_test_51HxAmPlEsEcReTkEy0123"
PASSWORD = "correct-horse-battery-staple"
EMAIL = "jane.doe@example.com"


async def emit_signin(svc: Any, *, user_id: uuid.UUID, request_id: str, ip: str) -> uuid.UUID:
    """What user-service does on sign-in: `record_audit` into its outbox, then its relay."""
    schema = "user_stub_" + uuid.uuid4().hex[:8]
    await create_schema_with_outbox(svc.superuser, schema)
    engine = create_async_engine(
        svc.settings.database_url, connect_args={"server_settings": {"search_path": schema}}
    )
    token = request_id_var.set(request_id)
    try:
        async with engine.begin() as conn:
            await record_audit(
                conn,
                producer="user-service",
                action="auth.signed_in",
                entity_type="user",
                entity_id=user_id,
                actor=Actor(actor_id=user_id, actor_role="customer", source_ip=ip),
                details={"email": EMAIL, "authorization": f"Bearer {JWT}"},
            )
            event_id = (await conn.execute(text("SELECT event_id FROM outbox"))).scalar_one()
        relay = OutboxRelay(engine=engine, producer=svc.producer, service="user-service")
        assert await relay.publish_pending() == 1
    finally:
        request_id_var.reset(token)
        await engine.dispose()
    return uuid.UUID(str(event_id))


def payment(order: OrderCreated, status: PaymentStatus, payment_id: uuid.UUID) -> EventEnvelope:
    payload = PaymentEvent(
        payment_id=payment_id,
        order_id=order.order_id,
        user_id=order.user_id,
        status=status,
        amount=order.amount,
        currency=order.currency,
        provider="stripe",
        provider_reference="pi_3Nxyz",
    )
    return new_event(payload, producer="payment-service", aggregate_id=str(order.order_id))


async def test_a_checkout_is_recorded_in_order_with_the_gateway_request_id(
    start_audit_service: Any,
) -> None:
    async with start_audit_service() as svc:
        request_id = uuid.uuid4().hex  # what the gateway minted for the call
        user_id, payment_id = uuid.uuid4(), uuid.uuid4()
        signin = await emit_signin(svc, user_id=user_id, request_id=request_id, ip="203.0.113.7")
        await svc.recorded(signin)

        token = request_id_var.set(request_id)  # producers copy it into every envelope
        try:
            order = OrderCreated(
                order_id=uuid.uuid4(), user_id=user_id, amount=1999, currency="usd"
            )
            created = new_event(order, producer="order-service", aggregate_id=str(order.order_id))
            processing = payment(order, PaymentStatus.PROCESSING, payment_id)
            succeeded = payment(order, PaymentStatus.SUCCEEDED, payment_id)
        finally:
            request_id_var.reset(token)
        # Each step happens after the one before was applied, as in a real checkout.
        await svc.publish(ORDER_CREATE, created)
        await svc.recorded(created.event_id)
        await svc.publish(PAYMENT_EVENT, processing)
        await svc.publish(PAYMENT_EVENT, succeeded)
        rows = await svc.recorded(signin, created.event_id, processing.event_id, succeeded.event_id)

        assert [r.action for r in rows] == [
            "auth.signed_in",
            "order.created",
            "payment.processing",
            "payment.succeeded",
        ]
        assert [r.request_id for r in rows] == [request_id] * 4
        assert [r.actor_id for r in rows] == [str(user_id)] * 4
        assert [(r.entity_type, r.entity_id) for r in rows] == [
            ("user", str(user_id)),
            ("order", str(order.order_id)),
            ("payment", str(payment_id)),
            ("payment", str(payment_id)),
        ]
        assert rows[0].outcome == "succeeded"
        assert rows[0].source_ip == "203.0.113.7"
        assert rows[0].actor_role == "customer"
        assert rows[0].details == {"email": "j***@example.com", "authorization": "[redacted]"}
        assert rows[2].aggregate_id == str(order.order_id)

        # The same story through the API: by request id, and as the order's history.
        by_request = await svc.get("/admin/audit/events", request_id=request_id)
        assert [i["action"] for i in by_request.json()["items"]] == [
            "payment.succeeded",
            "payment.processing",
            "order.created",
            "auth.signed_in",
        ]
        history = await svc.get(f"/admin/audit/entities/order/{order.order_id}")
        assert [i["action"] for i in history.json()["items"]] == [
            "order.created",
            "payment.processing",
            "payment.succeeded",
        ]
        verify = await svc.get("/admin/audit/verify")
        assert verify.json()["ok"] is True


async def test_a_redelivered_event_is_recorded_once(start_audit_service: Any) -> None:
    async with start_audit_service() as svc:
        user = UserRegistered(
            user_id=uuid.uuid4(), email=EMAIL, full_name="Jane Doe", role="customer"
        )
        envelope = new_event(user, producer="user-service", aggregate_id=str(user.user_id))
        marker = new_event(user, producer="user-service", aggregate_id=str(user.user_id))
        await svc.publish(USER_REGISTERED, envelope)
        await svc.publish(USER_REGISTERED, envelope)
        # Same key, same partition, after both copies: once it is in, both copies were read.
        await svc.publish(USER_REGISTERED, marker)
        await svc.recorded(marker.event_id)
        rows = await svc.sql(
            "SELECT event_id FROM audit_records WHERE entity_id = :id", id=str(user.user_id)
        )
        assert sorted(str(r.event_id) for r in rows) == sorted(
            [str(envelope.event_id), str(marker.event_id)]
        )


async def test_an_unknown_event_type_is_recorded_too(start_audit_service: Any) -> None:
    async with start_audit_service() as svc:
        envelope = EventEnvelope(
            event_type="order.shipped",
            producer="order-service",
            aggregate_id=str(uuid.uuid4()),
            payload={"order_id": str(uuid.uuid4()), "carrier": "dhl"},
        )
        await svc.publish("order.event", envelope)
        (row,) = await svc.recorded(envelope.event_id)
        assert (row.action, row.entity_type) == ("order.shipped", "order")
        assert row.details["carrier"] == "dhl"


async def test_nothing_sensitive_survives_in_the_audit_tables(start_audit_service: Any) -> None:
    async with start_audit_service(checkpoint_interval_seconds=0.5) as svc:
        request_id = uuid.uuid4().hex
        user_id = uuid.uuid4()
        token = request_id_var.set(request_id)
        try:
            registered = new_event(
                UserRegistered(user_id=user_id, email=EMAIL, full_name="Jane Doe", role="customer"),
                producer="user-service",
                aggregate_id=str(user_id),
            )
            config = new_event(
                ConfigChanged(
                    key="providers.stripe",
                    config_version=3,
                    value={
                        "api_key": STRIPE_KEY,
                        "note": f"rotated from {STRIPE_KEY}",
                        "enabled": True,
                    },
                    actor_id=user_id,
                    reason=f"old webhook secret {WEBHOOK_SECRET} leaked",
                ),
                producer="admin-service",
                aggregate_id="providers.stripe",
            )
            order = OrderCreated(
                order_id=uuid.uuid4(),
                user_id=user_id,
                amount=500,
                currency="usd",
                description=f"card {CARD_GROUPED}, contact {EMAIL}",
            )
            created = new_event(order, producer="order-service", aggregate_id=str(order.order_id))
        finally:
            request_id_var.reset(token)
        action = new_event(
            AuditAction(
                action="api_key.created",
                outcome=AuditOutcome.SUCCEEDED,
                actor_id=user_id,
                entity_type="api_key",
                entity_id=str(uuid.uuid4()),
                source_ip="198.51.100.4",
                request_id=request_id,
                details={
                    "key": API_KEY,
                    "echo": f"Authorization: Bearer {JWT}",
                    "password": PASSWORD,
                    "card_number": CARD,
                    "pan_in_text": f"paid with {CARD}",
                    "cvc": "123",
                    "phone": "+14155552671",
                    "webhook": {"secret": WEBHOOK_SECRET, "url": "https://merchant.example.com/h"},
                    "as_int": int(CARD),
                },
            ),
            producer="user-service",
            aggregate_id="api_key",
        )
        await svc.publish(USER_REGISTERED, registered)
        await svc.publish(CONFIG_CHANGED, config)
        await svc.publish(ORDER_CREATE, created)
        await svc.publish(AUDIT_EVENT, action)
        await svc.recorded(registered.event_id, config.event_id, created.event_id, action.event_id)

        rows: list[str] = []
        for table in ("audit_records", "audit_checkpoints", "audit_archives"):
            rows += [r[0] for r in await svc.sql(f"SELECT row_to_json(t)::text FROM {table} t")]
        dump = " ".join(rows)
        for secret in (
            EMAIL,
            JWT,
            "eyJ",
            CARD,
            CARD_GROUPED,
            CARD_GROUPED.replace(" ", ""),
            API_KEY,
            "pgk_",
            WEBHOOK_SECRET,
            "whsec_",
            STRIPE_KEY,
            "sk_test",
            PASSWORD,
            "4155552671",
        ):
            assert secret not in dump, secret
        # Generically: no 13-19 digit Luhn number left anywhere outside hex ids and hashes.
        assert CARD_PLACEHOLDER not in mask_text(dump.replace(CARD_PLACEHOLDER, ""))
        # What stays: the shortened email, ids, the request id, the IP, amounts.
        assert "j***@example.com" in dump
        assert request_id in dump
        assert str(order.order_id) in dump
        assert "198.51.100.4" in dump
        assert "+*********71" in dump


async def test_a_malformed_audit_event_is_dead_lettered_and_does_not_block_the_trail(
    start_audit_service: Any,
) -> None:
    from paygate_common.events.topics import AUDIT_DLQ
    from paygate_devstack.events_testing import read_topic

    async with start_audit_service(consumer_max_attempts=1) as svc:
        key = str(uuid.uuid4())
        broken = EventEnvelope(
            event_type="audit.event", producer="user-service", aggregate_id=key, payload={}
        )
        fine = new_event(
            AuditAction(action="auth.signed_in", entity_type="user", entity_id=key),
            producer="user-service",
            aggregate_id=key,
        )
        await svc.publish(AUDIT_EVENT, broken)
        await svc.publish(AUDIT_EVENT, fine)
        await svc.recorded(fine.event_id)
        letters = await read_topic(svc.settings.kafka_bootstrap_servers, AUDIT_DLQ, expect=1)
        assert str(broken.event_id) in [
            json.loads(r.value)["envelope"]["event_id"] for r in letters
        ]
        rows = await svc.sql("SELECT 1 FROM audit_records WHERE event_id = :id", id=broken.event_id)
        assert rows == []


async def test_two_replicas_consuming_together_keep_one_unforked_chain(
    start_audit_service: Any,
) -> None:
    async with start_audit_service() as first:
        group = first.app.state.consumer_options["group_id"]
        async with start_audit_service(
            database_url=first.settings.database_url, group=group
        ) as second:
            # Both members hold partitions (the group rebalanced to two) before the events.
            async def split() -> bool:
                a = first.app.state.eventing.consumers[0].consumer
                b = second.app.state.eventing.consumers[0].consumer
                return bool(a and b and a.assignment() and b.assignment())

            from paygate_devstack.events_testing import wait_for

            await wait_for(split, timeout=60)
            envelopes = []
            for i in range(60):
                user = UserRegistered(
                    user_id=uuid.uuid4(), email=f"u{i}@example.com", full_name="U", role="customer"
                )
                envelopes.append(
                    new_event(user, producer="user-service", aggregate_id=str(user.user_id))
                )
            await asyncio.gather(*(first.publish(USER_REGISTERED, e) for e in envelopes))
            await first.recorded(*(e.event_id for e in envelopes), timeout=60)
            rows = await first.sql("SELECT seq, prev_hash, hash FROM audit_records ORDER BY seq")
            assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
            assert all(rows[i].prev_hash == rows[i - 1].hash for i in range(1, len(rows)))
            verify = await second.get("/admin/audit/verify")
            assert verify.json()["ok"] is True
            assert verify.json()["checked"] == len(rows)
