"""notification-service end to end in-process: payment.event on Kafka → email in the SMTP sink.

Real PostgreSQL, Redis, Kafka (Tansu) and SMTP sink; user-service is `Any`.
"""

from __future__ import annotations

import json
import time
import uuid
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import FastAPI
from sqlalchemy import select

from notification_service.domain.notifications import record_payment_notification
from notification_service.recipients import cache_key
from notification_service.settings import Settings
from notification_service.store.tables import DeliveryAttempt, Notification
from paygate_common.db import unit_of_work
from paygate_common.events import NOTIFICATION_DLQ
from paygate_devstack.events_testing import wait_for

pytestmark = pytest.mark.timeout(60)


def parts(message: EmailMessage) -> dict[str, str]:
    return {
        part.get_content_type(): part.get_content()
        for part in message.walk()
        if part.get_content_maintype() == "text"
    }


async def notifications_for_event(app: FastAPI, event_id: uuid.UUID) -> list[Notification]:
    async with unit_of_work(app.state.sessionmaker) as session:
        rows = await session.scalars(select(Notification).where(Notification.event_id == event_id))
        return list(rows.all())


async def status_of(app: FastAPI, event_id: uuid.UUID) -> str | None:
    rows = await notifications_for_event(app, event_id)
    return rows[0].status if rows else None


async def dlq_messages(bootstrap: str, contains: str, timeout: float = 10) -> list[dict[str, Any]]:
    """Every message on notification.dlq whose value mentions `contains`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(NOTIFICATION_DLQ) or set()
        tps = [TopicPartition(NOTIFICATION_DLQ, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not found:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    if record.value and contains in record.value.decode():
                        found.append(json.loads(record.value))
        return found
    finally:
        await consumer.stop()


# --- delivery ------------------------------------------------------------------------------------


async def test_payment_succeeded_sends_one_email_with_amount_and_both_parts(
    app: FastAPI, payments: Any, stand_in: Any, mailbox: Any
) -> None:
    user_id, email = stand_in.add_user(full_name="Ada Lovelace")
    event = payments.build(user_id, "succeeded", amount=1999, currency="usd")

    await payments.publish(event)

    [message] = await wait_for(lambda: mailbox(email))
    assert message["Subject"] == "Payment received: 19.99 USD"
    assert "no-reply@paygate.test" in message["From"]
    body = parts(message)
    assert set(body) == {"text/plain", "text/html"}
    for content in body.values():
        assert "19.99 USD" in content
        assert event.payload["order_id"] in content
        assert "Ada Lovelace" in content
    [row] = await notifications_for_event(app, event.event_id)
    assert message["Message-ID"] == f"<notification-{row.id}@paygate.test>"
    await wait_for(lambda: status_of(app, event.event_id), timeout=5)
    [row] = await notifications_for_event(app, event.event_id)
    assert (row.status, row.attempts, row.recipient) == ("sent", 1, email)
    assert row.sent_at is not None
    assert stand_in.callers and set(stand_in.callers) == {"notification-service"}


async def test_payment_failed_email_carries_the_safe_failure_message(
    app: FastAPI, payments: Any, stand_in: Any, mailbox: Any
) -> None:
    user_id, email = stand_in.add_user(full_name="<script>x</script>")
    message_text = "Your card was declined. <b>Try another card</b> 4242 4242 4242 4242"
    event = payments.build(user_id, "failed", amount=500, failure_message=message_text)

    await payments.publish(event)

    [message] = await wait_for(lambda: mailbox(email))
    assert message["Subject"] == "Your payment of 5.00 USD did not go through"
    body = parts(message)
    assert "Your card was declined." in body["text/plain"]
    # HTML is escaped: a message or a name never becomes markup; a card-like number is masked.
    assert "&lt;b&gt;Try another card&lt;/b&gt;" in body["text/html"]
    assert "<script>" not in body["text/html"]
    assert "4242 4242 4242 4242" not in body["text/plain"] + body["text/html"]


async def test_requires_action_email_tells_the_customer_what_to_do_next(
    app: FastAPI, payments: Any, stand_in: Any, mailbox: Any
) -> None:
    user_id, email = stand_in.add_user()
    url = "https://bank.example/3ds/authenticate?session=abc"
    event = payments.build(
        user_id,
        "requires_action",
        amount=2500,
        currency="eur",
        next_action={"type": "redirect_to_url", "redirect_to_url": {"url": url}},
    )

    await payments.publish(event)

    [message] = await wait_for(lambda: mailbox(email))
    assert message["Subject"] == "Action needed to complete your payment of 25.00 EUR"
    body = parts(message)
    assert "What to do next" in body["text/plain"] and url in body["text/plain"]
    assert f'href="{url}"' in body["text/html"]


async def test_the_same_event_delivered_twice_sends_one_email(
    app: FastAPI, payments: Any, stand_in: Any, mailbox: Any
) -> None:
    user_id, email = stand_in.add_user()
    event = payments.build(user_id, "succeeded", amount=700)
    await payments.publish(event)
    await payments.publish(event)
    # Same key → same partition, consumed in order: once the sentinel is mailed, the
    # duplicate before it has been consumed as well.
    sentinel = payments.build(user_id, "refunded", amount=700)
    sentinel = sentinel.model_copy(update={"aggregate_id": event.aggregate_id})
    await payments.publish(sentinel)

    await wait_for(lambda: len(mailbox(email)) == 2)
    # The sentinel's row exists, so the duplicate before it was consumed (same partition, in
    # order, and a row it created would be in the same or an earlier transaction) ...
    await wait_for(lambda: _is(app, sentinel.event_id, "sent"))
    # ... and it created none: one row, sent once (`sent` is final, nothing sends it again).
    [row] = await wait_for(lambda: _rows_if(app, event.event_id, "sent"))
    assert row.attempts == 1
    assert [a.outcome for a in await attempts_of(app, row.id)] == ["sent"]
    subjects = sorted(m["Subject"] for m in mailbox(email))
    assert subjects == ["Payment received: 7.00 USD", "Refund of 7.00 USD is on its way"]


async def test_unique_event_and_channel_hold_even_without_the_inbox(
    app: FastAPI, payments: Any, stand_in: Any
) -> None:
    user_id, _ = stand_in.add_user()
    event = payments.build(user_id, "succeeded")
    async with unit_of_work(app.state.sessionmaker) as session:
        first = await record_payment_notification(session=session, envelope=event)
        second = await record_payment_notification(session=session, envelope=event)
    assert (first, second) == (True, False)
    assert len(await notifications_for_event(app, event.event_id)) == 1


async def test_events_not_worth_telling_are_ignored(
    app: FastAPI, payments: Any, stand_in: Any, mailbox: Any
) -> None:
    user_id, email = stand_in.add_user()
    pending = payments.build(user_id, "pending")
    cancelled = payments.build(user_id, "cancelled")
    sentinel = payments.build(user_id, "succeeded")
    for event in (pending, cancelled):
        await payments.publish(event.model_copy(update={"aggregate_id": sentinel.aggregate_id}))
    await payments.publish(sentinel)

    await wait_for(lambda: mailbox(email))
    assert await notifications_for_event(app, pending.event_id) == []
    assert await notifications_for_event(app, cancelled.event_id) == []
    assert len(mailbox(email)) == 1


async def test_contact_lookup_is_cached_in_redis(
    app: FastAPI,
    settings: Settings,
    payments: Any,
    stand_in: Any,
    mailbox: Any,
) -> None:
    user_id, email = stand_in.add_user()
    await payments.publish(payments.build(user_id, "succeeded", amount=100))
    await wait_for(lambda: len(mailbox(email)) == 1)
    await payments.publish(payments.build(user_id, "succeeded", amount=200))
    await wait_for(lambda: len(mailbox(email)) == 2)

    assert stand_in.contact_calls[user_id] == 1
    ttl = await app.state.redis.ttl(cache_key(user_id))
    assert 0 < ttl <= settings.contact_cache_ttl_seconds


# --- failures, dead letters and replay ------------------------------------------------------------


async def test_smtp_outage_dead_letters_then_admin_replay_sends_exactly_once(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth_headers: Any,
    kafka_broker: Any,
    settings: Settings,
    payments: Any,
    stand_in: Any,
    smtp_sink: Any,
    mailbox: Any,
) -> None:
    user_id, email = stand_in.add_user()
    event = payments.build(user_id, "succeeded", amount=4200)
    admin = auth_headers(uuid.uuid4(), "admin")
    smtp_sink.stop()
    try:
        await payments.publish(event)
        await wait_for(lambda: _is(app, event.event_id, "dead_lettered"))
    finally:
        smtp_sink.start()

    [row] = await notifications_for_event(app, event.event_id)
    assert row.attempts == settings.max_attempts and row.last_error
    attempts = await attempts_of(app, row.id)
    assert [a.attempt_no for a in attempts] == list(range(1, settings.max_attempts + 1))
    assert all(a.outcome == "failed" and a.error for a in attempts)

    listing = await client.get("/admin/notifications/dead-letters", headers=admin)
    assert listing.status_code == 200
    [letter] = [d for d in listing.json()["items"] if d["id"] == str(row.id)]
    assert letter["order_id"] == event.payload["order_id"]
    assert letter["attempts"] == settings.max_attempts and letter["last_error"] == row.last_error

    [dlq] = await dlq_messages(kafka_broker.bootstrap, contains=str(row.id))
    assert dlq["error"] == row.last_error and dlq["attempts"] == settings.max_attempts
    assert dlq["payload"]["notification_id"] == str(row.id)
    assert dlq["envelope"]["event_id"] == str(event.event_id)  # the original event, preserved
    assert mailbox(email) == []

    customer = await client.post(
        f"/admin/notifications/dead-letters/{row.id}/replay", headers=auth_headers(user_id)
    )
    assert customer.status_code == 403

    replay = await client.post(f"/admin/notifications/dead-letters/{row.id}/replay", headers=admin)
    assert replay.status_code == 202, replay.text
    assert replay.json()["status"] == "queued" and replay.json()["replayed_at"]

    [message] = await wait_for(lambda: mailbox(email))
    # `sent` is final: once the row is there, no further send of it can start.
    [row] = await wait_for(lambda: _rows_if(app, event.event_id, "sent"))
    assert (row.status, row.attempts, row.replay_count) == ("sent", 1, 1)
    assert row.replayed_at is not None
    replayed = [a for a in await attempts_of(app, row.id) if a.replay_no == 1]
    assert [a.outcome for a in replayed] == ["sent"]
    assert len(mailbox(email)) == 1
    assert message["Message-ID"] == f"<notification-{row.id}@paygate.test>"

    mine = (await client.get("/notifications", headers=auth_headers(user_id))).json()["items"]
    assert [(n["status"], n["replayed"]) for n in mine] == [("sent", True)]

    again = await client.post(f"/admin/notifications/dead-letters/{row.id}/replay", headers=admin)
    assert again.status_code == 409
    assert again.json()["code"] == "not_dead_lettered"


async def test_unknown_recipient_is_dead_lettered_at_once_and_never_cached(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth_headers: Any,
    payments: Any,
    stand_in: Any,
    mailbox: Any,
) -> None:
    user_id = uuid.uuid4()  # user-service does not know this user (yet)
    event = payments.build(user_id, "succeeded", amount=300)
    await payments.publish(event)
    await wait_for(lambda: _is(app, event.event_id, "dead_lettered"))
    [row] = await notifications_for_event(app, event.event_id)
    assert row.attempts == 1 and "recipient unknown" in (row.last_error or "")
    assert await app.state.redis.get(cache_key(user_id)) is None

    email = f"late-{user_id.hex[:8]}@example.com"
    stand_in.contacts[user_id] = {"email": email, "full_name": "Late Signup"}
    admin = auth_headers(uuid.uuid4(), "admin")
    replay = await client.post(f"/admin/notifications/dead-letters/{row.id}/replay", headers=admin)
    assert replay.status_code == 202
    await wait_for(lambda: mailbox(email))
    assert stand_in.contact_calls[user_id] == 2


async def _is(app: FastAPI, event_id: uuid.UUID, status: str) -> bool:
    return await status_of(app, event_id) == status


async def _rows_if(app: FastAPI, event_id: uuid.UUID, status: str) -> list[Notification] | None:
    rows = await notifications_for_event(app, event_id)
    return rows if rows and all(r.status == status for r in rows) else None


async def attempts_of(app: FastAPI, notification_id: uuid.UUID) -> list[DeliveryAttempt]:
    async with unit_of_work(app.state.sessionmaker) as session:
        return list(
            (
                await session.scalars(
                    select(DeliveryAttempt)
                    .where(DeliveryAttempt.notification_id == notification_id)
                    .order_by(DeliveryAttempt.attempt_no)
                )
            ).all()
        )


# --- the customer's list and access control --------------------------------------------------------


async def test_get_notifications_returns_only_the_callers_newest_first(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth_headers: Any,
    payments: Any,
    stand_in: Any,
    mailbox: Any,
) -> None:
    alice, alice_email = stand_in.add_user(full_name="Alice")
    bob, bob_email = stand_in.add_user(full_name="Bob")
    first = payments.build(alice, "succeeded", amount=1000)
    await payments.publish(first)
    await wait_for(lambda: mailbox(alice_email))
    second = payments.build(alice, "refunded", amount=1000)
    await payments.publish(second)
    await payments.publish(payments.build(bob, "succeeded", amount=999))
    await wait_for(lambda: len(mailbox(alice_email)) == 2)
    await wait_for(lambda: mailbox(bob_email))

    r = await client.get("/notifications", headers=auth_headers(alice))
    assert r.status_code == 200
    body = r.json()
    assert body["total"] == 2
    items = body["items"]
    assert [n["order_id"] for n in items] == [
        second.payload["order_id"],
        first.payload["order_id"],
    ]
    newest = items[0]
    assert newest["payment_id"] == second.payload["payment_id"]
    assert (newest["event_type"], newest["channel"]) == ("payment.refunded", "email")
    assert newest["subject"] == "Refund of 10.00 USD is on its way"
    assert newest["attempts"] >= 1 and newest["created_at"]
    assert "text" not in newest and "html" not in newest and "recipient" not in newest

    page = (await client.get("/notifications?limit=1&offset=1", headers=auth_headers(alice))).json()
    assert [n["order_id"] for n in page["items"]] == [first.payload["order_id"]]

    theirs = (await client.get("/notifications", headers=auth_headers(bob))).json()
    assert [n["order_id"] for n in theirs["items"]] != []
    assert alice_email not in json.dumps(theirs)
    assert {n["order_id"] for n in theirs["items"]}.isdisjoint(
        {first.payload["order_id"], second.payload["order_id"]}
    )


async def test_listing_needs_a_token_and_admin_endpoints_need_the_admin_role(
    client: httpx.AsyncClient, auth_headers: Any
) -> None:
    r = await client.get("/notifications")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    customer = auth_headers(uuid.uuid4())
    assert (
        await client.get("/admin/notifications/dead-letters", headers=customer)
    ).status_code == 403
    admin = auth_headers(uuid.uuid4(), "admin")
    missing = await client.post(
        f"/admin/notifications/dead-letters/{uuid.uuid4()}/replay", headers=admin
    )
    assert missing.status_code == 404 and missing.json()["code"] == "notification_not_found"
    bad = await client.get("/notifications?limit=0", headers=customer)
    assert bad.status_code == 422
