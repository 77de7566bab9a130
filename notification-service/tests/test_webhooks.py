"""Merchant webhooks in-process: payment.event on Kafka → a signed POST to a real local receiver.

Real PostgreSQL, Redis, Kafka (Tansu); the receiver is a real HTTP server on a loopback port.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import select, text
from standardwebhooks import Webhook, WebhookVerificationError

from notification_service.settings import Settings
from notification_service.store.tables import Notification, WebhookDelivery, WebhookEndpoint
from paygate_common.db import unit_of_work
from paygate_common.events import (
    ORDER_CREATE,
    ORDER_EVENT,
    PAYMENT_EVENT,
    EventEnvelope,
    OrderCancelled,
    OrderCreated,
    RefundEvent,
    RefundStatus,
    new_event,
)
from paygate_devstack.events_testing import wait_for

pytestmark = pytest.mark.timeout(90)


async def put_settings(
    client: httpx.AsyncClient, headers: dict[str, str], url: str, **extra: Any
) -> httpx.Response:
    return await client.put("/webhooks/settings", json={"url": url, **extra}, headers=headers)


async def delivery_for_event(app: FastAPI, event_id: uuid.UUID) -> WebhookDelivery | None:
    async with unit_of_work(app.state.sessionmaker) as session:
        return (
            await session.scalars(
                select(WebhookDelivery).where(WebhookDelivery.event_id == event_id)
            )
        ).one_or_none()


async def published_delivery(
    app: FastAPI, payments: Any, merchant: uuid.UUID, status: str = "succeeded"
) -> tuple[EventEnvelope, WebhookDelivery]:
    """Publish a `payment.<status>` of the merchant's and wait for its delivery row."""
    event = payments.build(merchant, status)
    await payments.publish(event)
    return event, await wait_for(lambda: delivery_for_event(app, event.event_id))


async def notification_for_event(app: FastAPI, event_id: uuid.UUID) -> Notification | None:
    async with unit_of_work(app.state.sessionmaker) as session:
        return (
            await session.scalars(select(Notification).where(Notification.event_id == event_id))
        ).first()


async def test_a_paid_payment_reaches_the_merchant_signed_and_verifiable_within_two_seconds(
    client: httpx.AsyncClient, auth_headers: Any, payments: Any, webhook_receiver: Any
) -> None:
    merchant = uuid.uuid4()
    headers = auth_headers(merchant)
    name, url = webhook_receiver.endpoint()
    created = await put_settings(client, headers, url)
    assert created.status_code == 200, created.text
    secret = created.json()["secret"]
    assert secret.startswith("whsec_")
    # The secret is shown once: neither GET nor a second PUT repeats it.
    assert (await client.get("/webhooks/settings", headers=headers)).json()["secret"] is None
    again = await put_settings(client, headers, url)
    assert again.status_code == 200 and again.json()["secret"] is None

    event = payments.build(merchant, "succeeded", amount=4200)
    started = time.monotonic()
    await payments.publish(event)
    await wait_for(lambda: webhook_receiver.requests(name), timeout=10)
    assert time.monotonic() - started < 2.0

    (request_headers, body) = webhook_receiver.requests(name)[0]
    payload = Webhook(secret).verify(body, request_headers)
    assert payload["type"] == "payment.succeeded"
    assert payload["data"]["amount"] == 4200
    assert payload["data"]["payment_id"] == str(event.payload["payment_id"])
    assert request_headers["webhook-signature"].startswith("v1,")
    tampered = body.replace(b"4200", b"4201")
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, request_headers)

    log = (await client.get("/webhooks", headers=headers)).json()
    assert [d["event_id"] for d in log["items"]] == [str(event.event_id)]
    await wait_for(lambda: _status(client, headers, log["items"][0]["id"], "succeeded"), timeout=10)


async def _status(
    client: httpx.AsyncClient, headers: dict[str, str], delivery_id: str, wanted: str
) -> dict[str, Any] | None:
    body = (await client.get(f"/webhooks/{delivery_id}", headers=headers)).json()
    return body if body.get("status") == wanted else None


async def test_two_errors_then_success_take_three_attempts_with_one_webhook_id(
    client: httpx.AsyncClient, auth_headers: Any, payments: Any, webhook_receiver: Any, app: FastAPI
) -> None:
    merchant = uuid.uuid4()
    headers = auth_headers(merchant)
    name, url = webhook_receiver.endpoint(500, 500)
    assert (await put_settings(client, headers, url)).status_code == 200
    failed_before, delivered_before = attempts_counted("failed"), attempts_counted("delivered")
    event = payments.build(merchant, "succeeded")
    await payments.publish(event)

    delivery = await wait_for(lambda: delivery_for_event(app, event.event_id))
    done = await wait_for(
        lambda: _status(client, headers, str(delivery.id), "succeeded"), timeout=20
    )
    assert done["attempts"] == 3
    assert [a["response_status"] for a in done["attempt_log"]] == [500, 500, 200]
    assert '"answer":500' in done["attempt_log"][0]["response_body"].replace(" ", "")
    assert done["last_response_status"] == 200
    ids = {h["webhook-id"] for h, _ in webhook_receiver.requests(name)}
    assert ids == {done["webhook_id"]}
    assert len(webhook_receiver.requests(name)) == 3
    # The webhook channel's own series (other tests' retries may add to it, never take away).
    assert attempts_counted("failed") >= failed_before + 2
    assert attempts_counted("delivered") >= delivered_before + 1


def finals_counted(status: str) -> float:
    name = "paygate_webhook_deliveries_final_total"
    return REGISTRY.get_sample_value(name, {"status": status}) or 0.0


def attempts_counted(outcome: str) -> float:
    name = "paygate_webhook_delivery_attempts_total"
    return REGISTRY.get_sample_value(name, {"outcome": outcome}) or 0.0


async def test_a_retry_after_longer_than_the_schedule_postpones_the_next_attempt(
    client: httpx.AsyncClient,
    auth_headers: Any,
    payments: Any,
    webhook_receiver: Any,
    app: FastAPI,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    merchant = uuid.uuid4()
    headers = auth_headers(merchant)
    monkeypatch.setattr(settings, "webhook_response_excerpt_bytes", 8)  # the log truncates
    # The schedule would retry after 0.3 s; the receiver asks for 2 s.
    name, url = webhook_receiver.endpoint(503, retry_after="2")
    assert (await put_settings(client, headers, url)).status_code == 200
    _event, delivery = await published_delivery(app, payments, merchant, "succeeded")
    done = await wait_for(
        lambda: _status(client, headers, str(delivery.id), "succeeded"), timeout=20
    )
    first, second = done["attempt_log"]
    assert (first["response_status"], second["response_status"]) == (503, 200)
    assert first["response_body"] == '{"answer'  # the first 8 bytes of `{"answer":503}`
    waited = datetime.fromisoformat(second["started_at"]) - datetime.fromisoformat(
        first["started_at"]
    )
    assert waited.total_seconds() >= 2.0
    assert len(webhook_receiver.requests(name)) == 2


def test_retry_after_is_read_as_seconds_or_a_date_and_only_ever_postpones() -> None:
    from notification_service.domain.webhooks import next_delay, parse_retry_after

    now = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after("Tue, 01 Dec 2026 12:01:30 GMT", now) == 90.0
    assert parse_retry_after("Tue, 01 Dec 2026 11:00:00 GMT", now) == 0.0  # in the past
    assert parse_retry_after("soon", now) is None and parse_retry_after(None, now) is None
    delays = (0.0, 60.0, 300.0)
    assert next_delay(delays, 1, None, cap=3600) == 60.0
    assert next_delay(delays, 1, 5.0, cap=3600) == 60.0  # never sooner than the schedule
    assert next_delay(delays, 1, 600.0, cap=3600) == 600.0
    assert next_delay(delays, 1, 10**9, cap=3600) == 3600.0  # capped
    assert next_delay(delays, 3, 600.0, cap=3600) is None  # the schedule is used up


async def test_a_receiver_that_never_answers_fails_after_the_schedule_then_a_manual_retry_sends(
    client: httpx.AsyncClient, auth_headers: Any, payments: Any, webhook_receiver: Any, app: FastAPI
) -> None:
    merchant = uuid.uuid4()
    headers = auth_headers(merchant)
    hang = webhook_receiver.HANG
    name, url = webhook_receiver.endpoint(hang, hang, hang)
    assert (await put_settings(client, headers, url)).status_code == 200
    failed_finals_before = finals_counted("failed")
    _event, delivery = await published_delivery(app, payments, merchant, "failed")
    failed = await wait_for(
        lambda: _status(client, headers, str(delivery.id), "failed"), timeout=30
    )
    assert failed["attempts"] == 3
    assert failed["next_attempt_at"] is None
    assert finals_counted("failed") >= failed_finals_before + 1  # for the dashboard
    assert all(a["response_status"] is None for a in failed["attempt_log"])
    assert all("Timeout" in (a["error"] or "") for a in failed["attempt_log"])

    retried = await client.post(f"/webhooks/{delivery.id}/retry", headers=headers)
    assert retried.status_code == 202
    done = await wait_for(
        lambda: _status(client, headers, str(delivery.id), "succeeded"), timeout=15
    )
    assert done["attempts"] == 4
    assert done["attempt_log"][-1]["manual"] is True
    ids = [h["webhook-id"] for h, _ in webhook_receiver.requests(name)]
    assert len(ids) == 4 and set(ids) == {done["webhook_id"]}


async def test_after_rotation_deliveries_verify_with_either_secret(
    client: httpx.AsyncClient, auth_headers: Any, payments: Any, webhook_receiver: Any
) -> None:
    merchant = uuid.uuid4()
    headers = auth_headers(merchant)
    name, url = webhook_receiver.endpoint()
    old_secret = (await put_settings(client, headers, url)).json()["secret"]
    rotated = await client.post("/webhooks/settings/rotate-secret", headers=headers)
    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    assert new_secret != old_secret and new_secret.startswith("whsec_")

    await payments.publish(payments.build(merchant, "succeeded"))
    await wait_for(lambda: webhook_receiver.requests(name), timeout=10)
    request_headers, body = webhook_receiver.requests(name)[0]
    assert len(request_headers["webhook-signature"].split(" ")) == 2
    assert Webhook(old_secret).verify(body, request_headers)["type"] == "payment.succeeded"
    assert Webhook(new_secret).verify(body, request_headers)["type"] == "payment.succeeded"
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 32).verify(body, request_headers)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hooks",
        "https://10.0.0.1/hooks",
        "https://169.254.169.254/latest/meta-data",
        "https://localhost:8443/hooks",
        "https://[::1]/hooks",
        "https://[::ffff:10.0.0.1]/hooks",
        "http://merchant.example.com/hooks",
        "https://v^[gk0*z/hooks",  # an unclosed IPv6 bracket: urlsplit raises (was a 500)
    ],
)
async def test_production_refuses_urls_that_resolve_inward_or_are_not_https(
    client: httpx.AsyncClient,
    auth_headers: Any,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    url: str,
) -> None:
    # Validation only: IP literals and `localhost` resolve without sending anything anywhere.
    monkeypatch.setattr(settings, "webhook_allow_private_targets", False)
    monkeypatch.setattr(settings, "webhook_require_https", True)
    response = await put_settings(client, auth_headers(uuid.uuid4()), url)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_webhook_url"


async def test_development_allows_a_loopback_receiver_but_never_credentials_in_the_url(
    client: httpx.AsyncClient, auth_headers: Any
) -> None:
    headers = auth_headers(uuid.uuid4())
    assert (await put_settings(client, headers, "http://127.0.0.1:9/hooks")).status_code == 200
    refused = await put_settings(client, headers, "http://user:pw@127.0.0.1:9/hooks")
    assert refused.status_code == 422
    bad_events = await put_settings(
        client, headers, "http://127.0.0.1:9/hooks", enabled_events=["user.registered"]
    )
    assert bad_events.json()["code"] == "invalid_enabled_events"


async def test_410_disables_the_endpoint_and_later_events_are_not_queued(
    client: httpx.AsyncClient, auth_headers: Any, payments: Any, webhook_receiver: Any, app: FastAPI
) -> None:
    merchant = uuid.uuid4()
    headers = auth_headers(merchant)
    name, url = webhook_receiver.endpoint(410)
    assert (await put_settings(client, headers, url)).status_code == 200
    _first, delivery = await published_delivery(app, payments, merchant, "succeeded")
    failed = await wait_for(lambda: _status(client, headers, str(delivery.id), "failed"))
    assert failed["attempts"] == 1
    current = (await client.get("/webhooks/settings", headers=headers)).json()
    assert current["enabled"] is False and "410" in current["disabled_reason"]

    # A later event of the same merchant is consumed: its customer notification is written in
    # the same transaction that would have written a delivery ...
    later = payments.build(merchant, "refunded")
    await payments.publish(later)
    await wait_for(lambda: notification_for_event(app, later.event_id), timeout=20)
    # ... and none was: the disabled endpoint gets nothing more.
    assert await delivery_for_event(app, later.event_id) is None
    log = (await client.get("/webhooks", headers=headers)).json()["items"]
    assert [d["event_type"] for d in log] == ["payment.succeeded"]
    assert len(webhook_receiver.requests(name)) == 1


async def test_only_the_owner_sees_or_retries_a_delivery_and_the_log_pages_by_cursor(
    client: httpx.AsyncClient, auth_headers: Any, payments: Any, webhook_receiver: Any, app: FastAPI
) -> None:
    merchant, stranger = uuid.uuid4(), uuid.uuid4()
    headers = auth_headers(merchant)
    name, url = webhook_receiver.endpoint()
    assert (
        await put_settings(client, headers, url, enabled_events=["payment.*"])
    ).status_code == 200
    events = [payments.build(merchant, "succeeded") for _ in range(3)]
    for event in events:
        await payments.publish(event)
    await wait_for(lambda: len(webhook_receiver.requests(name)) >= 3 or None, timeout=15)

    first = (await client.get("/webhooks?limit=2", headers=headers)).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = (
        await client.get(f"/webhooks?limit=2&cursor={first['next_cursor']}", headers=headers)
    ).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    seen = {d["event_id"] for d in first["items"] + rest["items"]}
    assert seen == {str(e.event_id) for e in events}
    bogus = await client.get("/webhooks?cursor=bm90LWEtY3Vyc29y", headers=headers)
    assert bogus.status_code == 422 and bogus.json()["code"] == "invalid_cursor"

    delivery_id = first["items"][0]["id"]
    other = auth_headers(stranger)
    assert (await client.get(f"/webhooks/{delivery_id}", headers=other)).status_code == 404
    refused = await client.post(f"/webhooks/{delivery_id}/retry", headers=other)
    assert refused.status_code == 404
    assert refused.json()["code"] == "webhook_delivery_not_found"
    assert (await client.get("/webhooks", headers=other)).json()["items"] == []
    assert (await client.get("/webhooks/settings", headers=other)).status_code == 404
    assert (await client.get("/webhooks")).status_code == 401


async def test_signing_secrets_are_stored_sealed_never_in_plain_text(
    client: httpx.AsyncClient, auth_headers: Any, app: FastAPI
) -> None:
    merchant = uuid.uuid4()
    secret = (await put_settings(client, auth_headers(merchant), "http://127.0.0.1:9/x")).json()[
        "secret"
    ]
    async with unit_of_work(app.state.sessionmaker) as session:
        row = (
            await session.scalars(
                select(WebhookEndpoint).where(WebhookEndpoint.user_id == merchant)
            )
        ).one()
        dump = (
            await session.execute(
                text("SELECT row_to_json(e)::text FROM webhook_endpoints e WHERE user_id = :u"),
                {"u": merchant},
            )
        ).scalar_one()
    assert row.secret_key_id == app.state.settings.encryption_key_id
    raw = secret.removeprefix("whsec_")
    assert secret not in dump and raw not in dump
    assert secret.encode() not in row.secret_sealed


async def test_an_endpoint_that_hangs_does_not_delay_another_merchants_delivery(
    client: httpx.AsyncClient,
    auth_headers: Any,
    payments: Any,
    webhook_receiver: Any,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Hanging sends hold their slot for 8 s here: waiting behind them would be unmistakable.
    monkeypatch.setattr(settings, "webhook_timeout_seconds", 8.0)
    slow, quick = uuid.uuid4(), uuid.uuid4()
    hang = webhook_receiver.HANG
    slow_name, slow_url = webhook_receiver.endpoint(*([hang] * 30), default=hang)
    quick_name, quick_url = webhook_receiver.endpoint()
    assert (await put_settings(client, auth_headers(slow), slow_url)).status_code == 200
    assert (await put_settings(client, auth_headers(quick), quick_url)).status_code == 200
    # More hanging deliveries than the whole sender has slots (8) ...
    for _ in range(10):
        await payments.publish(payments.build(slow, "succeeded"))
    await wait_for(lambda: len(webhook_receiver.requests(slow_name)) >= 2 or None, timeout=10)
    # ... and the other merchant's event still arrives well inside one hang timeout.
    started = time.monotonic()
    await payments.publish(payments.build(quick, "succeeded"))
    await wait_for(lambda: webhook_receiver.requests(quick_name), timeout=10)
    assert time.monotonic() - started < 5.0
    # The per-endpoint bound: two of the ten hanging deliveries on the wire, the rest wait.
    assert len(webhook_receiver.requests(slow_name)) == 2


async def test_reencryption_moves_every_secret_to_the_new_key_and_signing_still_verifies(
    client: httpx.AsyncClient, auth_headers: Any, app: FastAPI
) -> None:
    from notification_service.commands import reencrypt_all
    from notification_service.domain.webhooks import signing_secrets
    from paygate_common.crypto import EnvelopeCipher, new_key

    merchant = uuid.uuid4()
    headers = auth_headers(merchant)
    secret = (await put_settings(client, headers, "http://127.0.0.1:9/r")).json()["secret"]
    rotated = (await client.post("/webhooks/settings/rotate-secret", headers=headers)).json()
    settings: Settings = app.state.settings
    keys = {**json.loads(settings.encryption_keys.get_secret_value()), "k-new": (new := new_key())}
    forward = EnvelopeCipher(keys, "k-new")
    try:
        counts = await reencrypt_all(app.state.sessionmaker, forward)
        assert counts["webhook_endpoints"] >= 1
        async with unit_of_work(app.state.sessionmaker) as session:
            row = (
                await session.scalars(
                    select(WebhookEndpoint).where(WebhookEndpoint.user_id == merchant)
                )
            ).one()
            stale = (
                await session.execute(
                    text(
                        "SELECT count(*) FROM webhook_endpoints WHERE secret_key_id <> 'k-new' "
                        "OR previous_key_id <> 'k-new'"
                    )
                )
            ).scalar_one()
        assert row.secret_key_id == "k-new" and row.previous_key_id == "k-new"
        assert stale == 0
        # Only the new key is needed from now on, and both secrets are unchanged.
        opened = signing_secrets(EnvelopeCipher({"k-new": new}, "k-new"), row, row.updated_at)
        assert opened == [rotated["secret"], secret]
    finally:
        back = EnvelopeCipher(keys, settings.encryption_key_id)
        await reencrypt_all(app.state.sessionmaker, back)


async def test_settings_changes_are_audited_without_the_secret(
    client: httpx.AsyncClient, auth_headers: Any, app: FastAPI
) -> None:
    merchant = uuid.uuid4()
    headers = auth_headers(merchant)
    secret = (await put_settings(client, headers, "http://127.0.0.1:9/a")).json()["secret"]
    rotated = (await client.post("/webhooks/settings/rotate-secret", headers=headers)).json()
    async with unit_of_work(app.state.sessionmaker) as session:
        rows = (
            (
                await session.execute(
                    text(
                        "SELECT payload::text FROM outbox WHERE topic = 'audit.event' "
                        "AND payload::text LIKE '%webhook_settings.changed%' "
                        "AND payload::text LIKE :actor"
                    ),
                    {"actor": f"%{merchant}%"},
                )
            )
            .scalars()
            .all()
        )
    assert len(rows) == 2
    for row in rows:
        assert secret not in row and rotated["secret"] not in row
        assert "whsec_" not in row


async def test_a_target_that_became_private_is_refused_at_send_time(
    client: httpx.AsyncClient,
    auth_headers: Any,
    payments: Any,
    webhook_receiver: Any,
    app: FastAPI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from notification_service.domain.webhook_urls import UrlPolicy

    merchant = uuid.uuid4()
    headers = auth_headers(merchant)
    name, url = webhook_receiver.endpoint()
    assert (await put_settings(client, headers, url)).status_code == 200
    # Saved under the development policy; the sender now runs under production's.
    monkeypatch.setattr(
        app.state.webhook_sender, "policy", UrlPolicy(require_https=False, allow_private=False)
    )
    _event, delivery = await published_delivery(app, payments, merchant, "succeeded")

    async def refused_once() -> dict[str, Any] | None:
        body = (await client.get(f"/webhooks/{delivery.id}", headers=headers)).json()
        return body if body["attempt_log"] else None

    refused = await wait_for(refused_once, timeout=15)
    assert "refused target" in refused["attempt_log"][0]["error"]
    assert "loopback" in refused["attempt_log"][0]["error"]
    assert webhook_receiver.requests(name) == []


def test_a_pinned_target_connects_to_the_vetted_address_and_keeps_the_name_for_tls() -> None:
    from notification_service.domain.webhook_urls import pin_to_address

    https = pin_to_address("https://shop.example.com/hooks?x=1", "203.0.113.7")
    assert https.url == "https://203.0.113.7/hooks?x=1"
    assert (https.host_header, https.sni_hostname) == ("shop.example.com", "shop.example.com")
    v6 = pin_to_address("https://shop.example.com:8443/h", "2001:db8::1")
    assert v6.url == "https://[2001:db8::1]:8443/h" and v6.host_header == "shop.example.com:8443"
    plain = pin_to_address("http://shop.example.com/h", "198.51.100.2")
    assert plain.sni_hostname is None


async def test_the_sender_posts_to_the_pinned_address_with_the_original_host(
    client: httpx.AsyncClient, auth_headers: Any, webhook_receiver: Any, app: FastAPI
) -> None:
    # Loopback only. The name cannot resolve (.invalid never does), so reaching the receiver
    # proves the connection went to the pinned address and not through a second lookup.
    merchant = uuid.uuid4()
    name, url = webhook_receiver.endpoint()
    local_url = url.replace("127.0.0.1", "pinned-target.invalid")
    assert (await put_settings(client, auth_headers(merchant), local_url)).status_code == 200
    async with unit_of_work(app.state.sessionmaker) as session:
        endpoint = (
            await session.scalars(
                select(WebhookEndpoint).where(WebhookEndpoint.user_id == merchant)
            )
        ).one()
    delivery = WebhookDelivery(
        id=uuid.uuid4(), endpoint_id=endpoint.id, body='{"type": "payment.succeeded"}'
    )
    status, _, _ = await app.state.webhook_sender._post(delivery, endpoint, "127.0.0.1")
    assert status == 200
    [(headers, body)] = webhook_receiver.requests(name)
    assert headers["host"] == local_url.split("/")[2]
    assert body == b'{"type": "payment.succeeded"}'


async def test_refund_and_order_events_become_deliveries_and_enabled_events_filter_the_rest(
    client: httpx.AsyncClient,
    auth_headers: Any,
    payments: Any,
    webhook_receiver: Any,
    app: FastAPI,
) -> None:
    merchant = uuid.uuid4()
    headers = auth_headers(merchant)
    name, url = webhook_receiver.endpoint()
    chosen = ["refund.*", "order.cancelled", "order.created"]
    assert (await put_settings(client, headers, url, enabled_events=chosen)).status_code == 200
    order_id, payment_id = uuid.uuid4(), uuid.uuid4()
    refund = new_event(
        RefundEvent(
            refund_id=uuid.uuid4(),
            payment_id=payment_id,
            order_id=order_id,
            user_id=merchant,
            status=RefundStatus.SUCCEEDED,
            amount=500,
            currency="usd",
            provider="stripe",
        ),
        producer="payment-service",
        aggregate_id=str(payment_id),
    )
    created = new_event(
        OrderCreated(order_id=order_id, user_id=merchant, amount=500, currency="usd"),
        producer="order-service",
        aggregate_id=str(order_id),
    )
    cancelled = new_event(
        OrderCancelled(order_id=order_id, user_id=merchant, reason="expired"),
        producer="order-service",
        aggregate_id=str(order_id),
    )
    producer = payments.producer
    await producer.send_and_wait(PAYMENT_EVENT, refund.to_bytes(), key=str(payment_id).encode())
    await producer.send_and_wait(ORDER_CREATE, created.to_bytes(), key=str(order_id).encode())
    await producer.send_and_wait(ORDER_EVENT, cancelled.to_bytes(), key=str(order_id).encode())
    paid = payments.build(merchant, "succeeded")  # not among the enabled events
    await payments.publish(paid)

    for event in (refund, created, cancelled):
        delivery = await wait_for(lambda e=event: delivery_for_event(app, e.event_id))
        assert delivery.event_type == event.event_type

    def three_received() -> set[str] | None:
        received = webhook_receiver.requests(name)
        return {json.loads(b)["type"] for _, b in received} if len(received) >= 3 else None

    types = await wait_for(three_received, timeout=15)
    assert types == {"refund.succeeded", "order.created", "order.cancelled"}
    # The payment event was consumed (its customer notification is written in the same
    # transaction a delivery would have been) and became no delivery.
    await wait_for(lambda: notification_for_event(app, paid.event_id), timeout=20)
    assert await delivery_for_event(app, paid.event_id) is None
