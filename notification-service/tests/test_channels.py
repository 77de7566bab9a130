"""SMS, Web Push, preferences, templates and a user-service outage, end to end in-process:
payment.event on Kafka → the SMS provider stand-in, the push-service stand-in and the SMTP sink.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from sqlalchemy import select, text

from notification_service.store.tables import (
    DeliveryAttempt,
    MessageTemplate,
    Notification,
    PushSubscription,
)
from paygate_common.db import unit_of_work
from paygate_devstack.events_testing import wait_for
from paygate_devstack.smtp_sink import message_body

pytestmark = pytest.mark.timeout(90)


def new_phone() -> str:
    return "+1555" + str(uuid.uuid4().int)[:7]


async def subscribe_browser(
    client: httpx.AsyncClient, push_sink: Any, headers: dict[str, str]
) -> dict[str, Any]:
    """What a browser does: make a keypair, subscribe at the push service, hand us the result."""
    key, auth = ec.generate_private_key(ec.SECP256R1()), uuid.uuid4().bytes
    subscription = push_sink.subscribe(key, auth)
    created = await client.post(
        "/notifications/push-subscriptions", json=subscription, headers=headers
    )
    assert created.status_code == 201, created.text
    return subscription


async def consumed(app: FastAPI, event_id: uuid.UUID) -> bool | None:
    async with unit_of_work(app.state.sessionmaker) as session:
        found = (
            await session.execute(text("SELECT 1 FROM inbox WHERE event_id = :e"), {"e": event_id})
        ).first()
    return True if found else None


async def rows_for(app: FastAPI, event_id: uuid.UUID) -> list[Notification]:
    async with unit_of_work(app.state.sessionmaker) as session:
        return list(
            (
                await session.scalars(select(Notification).where(Notification.event_id == event_id))
            ).all()
        )


async def test_a_paid_payment_reaches_sms_and_push_and_email_for_a_user_who_wants_them(
    client: httpx.AsyncClient,
    auth_headers: Any,
    stand_in: Any,
    payments: Any,
    sms_sink: Any,
    push_sink: Any,
    app: FastAPI,
    mailbox: Any,
) -> None:
    phone = new_phone()
    user_id, email = stand_in.add_user(full_name="Grace Hopper", phone=phone)
    headers = auth_headers(user_id)
    defaults = (await client.get("/notifications/preferences", headers=headers)).json()
    assert defaults == {"email": True, "sms": False, "push": True}
    updated = await client.put("/notifications/preferences", json={"sms": True}, headers=headers)
    assert updated.json() == {"email": True, "sms": True, "push": True}
    subscription = await subscribe_browser(client, push_sink, headers)

    event = payments.build(user_id, "succeeded", amount=2500)
    await payments.publish(event)

    sms = await wait_for(lambda: sms_sink.messages(to=phone) or None, timeout=20)
    assert len(sms) == 1 and "25.00 USD" in sms[0]["body"]
    assert sms[0]["from"] == app.state.settings.sms_from_number
    pushed = await wait_for(
        lambda: push_sink.messages(subscription["endpoint"]) or None, timeout=20
    )
    payload = json.loads(pushed[0]["payload"])
    assert payload["title"] == "Payment received"
    assert "25.00 USD" in payload["body"]
    assert payload["data"]["payment_id"] == str(event.payload["payment_id"])
    assert pushed[0]["vapid_sub"] == app.state.settings.vapid_subject
    await wait_for(lambda: mailbox(email))
    rows = await wait_for(lambda: _all_sent(app, event.event_id, expected=3), timeout=20)
    assert sorted(r.channel for r in rows) == ["email", "push", "sms"]


async def _all_sent(
    app: FastAPI, event_id: uuid.UUID, *, expected: int
) -> list[Notification] | None:
    rows = await rows_for(app, event_id)
    return rows if len(rows) == expected and all(r.status == "sent" for r in rows) else None


async def test_with_every_channel_off_a_consumed_event_sends_nothing(
    client: httpx.AsyncClient,
    auth_headers: Any,
    stand_in: Any,
    payments: Any,
    sms_sink: Any,
    push_sink: Any,
    app: FastAPI,
) -> None:
    phone = new_phone()
    user_id, _ = stand_in.add_user(phone=phone)
    headers = auth_headers(user_id)
    subscription = await subscribe_browser(client, push_sink, headers)
    off = await client.put(
        "/notifications/preferences",
        json={"email": False, "sms": False, "push": False},
        headers=headers,
    )
    assert off.json() == {"email": False, "sms": False, "push": False}
    event = payments.build(user_id, "succeeded")
    await payments.publish(event)
    await wait_for(lambda: consumed(app, event.event_id), timeout=20)
    assert await rows_for(app, event.event_id) == []
    assert sms_sink.messages(to=phone) == []
    assert push_sink.messages(subscription["endpoint"]) == []


async def test_sms_without_a_phone_is_skipped_and_a_gone_push_subscription_is_dropped(
    client: httpx.AsyncClient,
    auth_headers: Any,
    stand_in: Any,
    payments: Any,
    push_sink: Any,
    app: FastAPI,
) -> None:
    user_id, _ = stand_in.add_user()  # no phone on the profile
    headers = auth_headers(user_id)
    await client.put("/notifications/preferences", json={"sms": True}, headers=headers)
    subscription = await subscribe_browser(client, push_sink, headers)
    push_sink.expire(subscription["endpoint"])  # the browser unsubscribed
    event = payments.build(user_id, "refunded")
    await payments.publish(event)

    async def settled() -> dict[str, Notification] | None:
        rows = {r.channel: r for r in await rows_for(app, event.event_id)}
        done = {"sent", "skipped", "dead_lettered"}
        return rows if len(rows) == 3 and all(r.status in done for r in rows.values()) else None

    rows = await wait_for(settled, timeout=20)
    assert rows["email"].status == "sent"
    assert rows["sms"].status == "skipped" and "phone" in (rows["sms"].last_error or "")
    assert rows["push"].status == "skipped"
    async with unit_of_work(app.state.sessionmaker) as session:
        left = (
            await session.scalars(
                select(PushSubscription).where(PushSubscription.user_id == user_id)
            )
        ).all()
    assert left == []


async def test_a_push_subscription_with_bad_keys_is_refused(
    client: httpx.AsyncClient, auth_headers: Any
) -> None:
    bad = {
        "endpoint": "http://127.0.0.1:9/push/x",
        "keys": {"p256dh": base64.urlsafe_b64encode(b"short").decode(), "auth": "AAAA"},
    }
    response = await client.post(
        "/notifications/push-subscriptions", json=bad, headers=auth_headers(uuid.uuid4())
    )
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_push_subscription"
    # a stray character the lenient base64 decoder would have dropped (schemathesis found it)
    point = base64.urlsafe_b64encode(b"\x04" + bytes(range(64))).decode()
    stray = {
        "endpoint": "http://127.0.0.1:9/push/x",
        "keys": {"p256dh": point + "*", "auth": base64.urlsafe_b64encode(bytes(16)).decode()},
    }
    response = await client.post(
        "/notifications/push-subscriptions", json=stray, headers=auth_headers(uuid.uuid4())
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_push_subscription"


# --- templates ---------------------------------------------------------------------------------


async def test_template_with_an_unknown_variable_bad_syntax_or_a_sandbox_escape_is_refused(
    client: httpx.AsyncClient, auth_headers: Any
) -> None:
    admin = auth_headers(uuid.uuid4(), role="admin")
    url = "/admin/notifications/templates/payment.succeeded/sms"
    unknown = await client.put(url, json={"parts": {"text": "Hi {{ card_number }}"}}, headers=admin)
    assert unknown.status_code == 422
    assert unknown.json()["code"] == "invalid_template"
    assert "card_number" in unknown.json()["detail"]
    syntax = await client.put(url, json={"parts": {"text": "Hi {{ name "}}, headers=admin)
    assert syntax.status_code == 422 and "syntax" in syntax.json()["detail"]
    escape = await client.put(
        url, json={"parts": {"text": "{{ name.__class__.__mro__ }}"}}, headers=admin
    )
    assert escape.status_code == 422
    missing = await client.put(
        "/admin/notifications/templates/payment.succeeded/email",
        json={"parts": {"text": "only text"}},
        headers=admin,
    )
    assert missing.status_code == 422
    unknown_type = await client.put(
        "/admin/notifications/templates/payment.nope/sms",
        json={"parts": {"text": "x"}},
        headers=admin,
    )
    assert unknown_type.status_code == 404
    customer = auth_headers(uuid.uuid4())
    forbidden = await client.put(url, json={"parts": {"text": "{{ amount }}"}}, headers=customer)
    assert forbidden.status_code == 403


async def test_a_saved_template_changes_the_next_email_and_keeps_the_previous_versions(
    client: httpx.AsyncClient,
    auth_headers: Any,
    stand_in: Any,
    payments: Any,
    app: FastAPI,
    live_templates: None,
    mailbox: Any,
) -> None:
    admin = auth_headers(uuid.uuid4(), role="admin")
    url = "/admin/notifications/templates/payment.requires_action/email"
    parts = {
        "subject": "Please confirm {{ amount }}",
        "text": "Dear {{ name }}, confirm {{ amount }}{% if action_url %} at {{ action_url }}{% endif %}. v1",
        "html": "<p>Dear {{ name }}, confirm {{ amount }}</p>",
    }
    first = await client.put(url, json={"parts": parts}, headers=admin)
    assert first.status_code == 200, first.text
    second = await client.put(
        url, json={"parts": {**parts, "text": parts["text"].replace("v1", "v2")}}, headers=admin
    )
    assert second.json()["version"] == first.json()["version"] + 1
    history = (await client.get(f"{url}/versions", headers=admin)).json()["items"]
    assert [h["version"] for h in history][:2] == [
        second.json()["version"],
        first.json()["version"],
    ]
    listed = (await client.get("/admin/notifications/templates", headers=admin)).json()["items"]
    live = next(
        t for t in listed if (t["event_type"], t["channel"]) == ("payment.requires_action", "email")
    )
    assert live["source"] == "custom" and "v2" in live["parts"]["text"]

    user_id, email = stand_in.add_user(full_name="Alan Turing")
    await payments.publish(payments.build(user_id, "requires_action"))
    mails = await wait_for(lambda: mailbox(email), timeout=20)
    assert mails[0]["Subject"] == "Please confirm 19.99 USD"
    assert "Dear Alan Turing, confirm 19.99 USD. v2" in message_body(mails[0])

    # The change is audited through the outbox.
    async with unit_of_work(app.state.sessionmaker) as session:
        audited = (
            await session.execute(
                text(
                    "SELECT count(*) FROM outbox WHERE topic = 'audit.event' "
                    "AND payload::text LIKE '%template.changed%' "
                    "AND payload::text LIKE '%payment.requires_action/email%'"
                )
            )
        ).scalar_one()
    assert audited >= 2


async def test_a_template_that_breaks_at_send_time_falls_back_to_the_built_in_one(
    stand_in: Any, payments: Any, app: FastAPI, live_templates: None, mailbox: Any
) -> None:
    # Bypass validation, as a template from an older release might: it names a variable that
    # does not exist, so rendering raises under StrictUndefined.
    async with unit_of_work(app.state.sessionmaker) as session:
        session.add(
            MessageTemplate(
                event_type="payment.failed",
                channel="email",
                version=10_000,
                parts={"subject": "{{ nope }}", "text": "{{ nope }}", "html": "{{ nope }}"},
            )
        )
    from prometheus_client import REGISTRY

    def fallbacks() -> float:
        name = "paygate_notification_template_fallbacks_total"
        return REGISTRY.get_sample_value(name, {"channel": "email"}) or 0.0

    before = fallbacks()
    user_id, email = stand_in.add_user()
    await payments.publish(payments.build(user_id, "failed"))
    mails = await wait_for(
        lambda: mailbox(email),
        timeout=20,
    )
    assert "did not go through" in mails[0]["Subject"]
    assert fallbacks() >= before + 1  # logged and counted, not silently swallowed


# --- user-service outage ---------------------------------------------------------------------


async def test_a_user_service_outage_costs_no_attempts_and_the_email_goes_out_after_it(
    stand_in: Any, payments: Any, app: FastAPI, mailbox: Any
) -> None:
    max_attempts = app.state.settings.max_attempts
    user_id, email = stand_in.add_user()
    stand_in.unavailable.add(user_id)
    event = payments.build(user_id, "succeeded")
    try:
        await payments.publish(event)
        # Far more lookups than the attempt budget: before the fix this dead-lettered.
        await wait_for(
            lambda: stand_in.contact_calls[user_id] >= max_attempts * 3 or None, timeout=30
        )
        [row] = await rows_for(app, event.event_id)
        # Still waiting to be sent (`sending` only while a lookup is in flight), nothing spent.
        assert row.status in ("queued", "sending") and row.attempts <= 1
        assert await attempt_log(app, row.id) == []
    finally:
        stand_in.unavailable.discard(user_id)
    await wait_for(lambda: mailbox(email), timeout=20)
    [row] = await wait_for(lambda: _all_sent(app, event.event_id, expected=1))
    assert row.attempts == 1
    assert await attempt_log(app, row.id) == [(1, "sent")]


async def attempt_log(app: FastAPI, notification_id: uuid.UUID) -> list[tuple[int, str]]:
    async with unit_of_work(app.state.sessionmaker) as session:
        rows = await session.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.notification_id == notification_id)
            .order_by(DeliveryAttempt.attempt_no)
        )
        return [(a.attempt_no, a.outcome) for a in rows.all()]


async def test_an_sms_the_provider_refuses_is_dead_lettered_like_an_email(
    client: httpx.AsyncClient,
    auth_headers: Any,
    stand_in: Any,
    payments: Any,
    app: FastAPI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pydantic import SecretStr

    phone = new_phone()
    user_id, _ = stand_in.add_user(phone=phone)
    await client.put(
        "/notifications/preferences", json={"sms": True}, headers=auth_headers(user_id)
    )
    from prometheus_client import REGISTRY

    def counted(channel: str) -> float:
        labels = {"channel": channel, "outcome": "dead_lettered"}
        name = "paygate_notification_delivery_attempts_total"
        return REGISTRY.get_sample_value(name, labels) or 0.0

    sms_before, email_before = counted("sms"), counted("email")
    # Wrong credentials: the provider answers 401 (Twilio 20003), which no retry can fix.
    monkeypatch.setattr(app.state.settings, "sms_auth_token", SecretStr("not-the-token"))
    event = payments.build(user_id, "succeeded")
    await payments.publish(event)

    async def sms_row() -> Notification | None:
        rows = [r for r in await rows_for(app, event.event_id) if r.channel == "sms"]
        return rows[0] if rows and rows[0].status == "dead_lettered" else None

    dead = await wait_for(sms_row, timeout=20)
    assert "401" in (dead.last_error or "") and "20003" in (dead.last_error or "")
    async with unit_of_work(app.state.sessionmaker) as session:
        dlq = (
            await session.execute(
                text(
                    "SELECT count(*) FROM outbox WHERE topic = 'notification.dlq' "
                    "AND payload::text LIKE :n"
                ),
                {"n": f"%{dead.id}%"},
            )
        ).scalar_one()
    assert dlq == 1
    # Counted on the SMS channel's own series; the email of the same event went out.
    assert counted("sms") == sms_before + 1
    assert counted("email") == email_before


async def test_the_same_idempotency_key_saves_one_template_version(
    client: httpx.AsyncClient, auth_headers: Any, app: FastAPI, live_templates: None
) -> None:
    admin = {**auth_headers(uuid.uuid4(), role="admin"), "Idempotency-Key": uuid.uuid4().hex}
    url = "/admin/notifications/templates/payment.refunded/push"
    parts = {"title": "Refund", "text": "{{ amount }} is on its way back"}
    first = await client.put(url, json={"parts": parts}, headers=admin)
    again = await client.put(url, json={"parts": parts}, headers=admin)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    history = (await client.get(f"{url}/versions", headers=admin)).json()["items"]
    assert len(history) == 1
    other = await client.put(url, json={"parts": {**parts, "title": "Refund!"}}, headers=admin)
    assert other.status_code == 422


async def test_a_push_auth_secret_is_sealed_at_rest_and_the_reencrypt_command_moves_it(
    client: httpx.AsyncClient, auth_headers: Any, push_sink: Any, app: FastAPI
) -> None:
    from notification_service.commands import reencrypt_all
    from notification_service.domain.preferences import push_targets
    from paygate_common.crypto import EnvelopeCipher, new_key

    user_id = uuid.uuid4()
    subscription = await subscribe_browser(client, push_sink, auth_headers(user_id))
    auth = subscription["keys"]["auth"]
    async with unit_of_work(app.state.sessionmaker) as session:
        dump = (
            await session.execute(
                text("SELECT row_to_json(s)::text FROM push_subscriptions s WHERE user_id = :u"),
                {"u": user_id},
            )
        ).scalar_one()
    assert auth not in dump
    assert json.loads(dump)["auth_key_id"] == app.state.settings.encryption_key_id

    settings = app.state.settings
    keys = {**json.loads(settings.encryption_keys.get_secret_value()), "k-push": (new := new_key())}
    try:
        counts = await reencrypt_all(app.state.sessionmaker, EnvelopeCipher(keys, "k-push"))
        assert counts["push_subscriptions"] >= 1
        only_new = EnvelopeCipher({"k-push": new}, "k-push")
        async with unit_of_work(app.state.sessionmaker) as session:
            [(_, target)] = await push_targets(session=session, cipher=only_new, user_id=user_id)
        assert target.auth == auth and target.endpoint == subscription["endpoint"]
    finally:
        await reencrypt_all(
            app.state.sessionmaker, EnvelopeCipher(keys, settings.encryption_key_id)
        )
