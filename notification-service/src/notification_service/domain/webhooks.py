"""Merchant webhooks: endpoint settings and secrets, which events become deliveries, the
delivery state machine and the Standard Webhooks signature."""

from __future__ import annotations

import base64
import logging
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks import Webhook

from notification_service.domain.errors import (
    WebhookDeliveryNotFound,
    WebhookSettingsNotFound,
)
from notification_service.domain.status import (
    WEBHOOK_TRANSITIONS,
    WebhookDeliveryStatus,
    check_transition,
)
from notification_service.domain.webhook_urls import UrlPolicy, check_webhook_url
from notification_service.store import webhooks as store
from notification_service.store.tables import (
    WebhookDelivery,
    WebhookEndpoint,
)
from paygate_common.crypto import EnvelopeCipher, Sealed
from paygate_common.errors import InvalidRequest
from paygate_common.events import EventEnvelope

log = logging.getLogger("notification_service.webhooks")

SECRET_PREFIX = "whsec_"
# The event families a merchant hears about: their payments, refunds and orders.
WEBHOOK_EVENT_PREFIXES = ("payment.", "refund.", "order.")
EVENT_TYPE_PATTERN = r"^(payment|refund|order)\.([a-z_]+|\*)$"
_EVENT_PATTERN = re.compile(EVENT_TYPE_PATTERN)

S = WebhookDeliveryStatus


class AttemptOutcome(StrEnum):
    DELIVERED = "delivered"  # 2xx
    FAILED = "failed"  # any other answer, or none
    GONE = "gone"  # 410: the merchant retired the endpoint


def status_after(
    current: WebhookDeliveryStatus,
    outcome: AttemptOutcome,
    *,
    manual: bool,
    attempts_left: bool,
) -> WebhookDeliveryStatus:
    """Where an attempt leaves a delivery. A failed manual retry changes nothing (it was once)."""
    if outcome is AttemptOutcome.DELIVERED or current is S.SUCCEEDED:
        target = S.SUCCEEDED
    elif outcome is AttemptOutcome.GONE:
        target = S.FAILED
    elif manual:
        target = current
    else:
        target = S.RETRYING if attempts_left else S.FAILED
    return check_transition(WEBHOOK_TRANSITIONS, current, target)


def outcome_of(status_code: int | None) -> AttemptOutcome:
    if status_code is not None and 200 <= status_code < 300:
        return AttemptOutcome.DELIVERED
    if status_code == 410:
        return AttemptOutcome.GONE
    return AttemptOutcome.FAILED


def next_delay(
    delays: Sequence[float], scheduled_attempts: int, retry_after: float | None, cap: float
) -> float | None:
    """Seconds until the next scheduled attempt after `scheduled_attempts` of them, or None
    when the schedule is used up. A receiver's Retry-After may only push it later."""
    if scheduled_attempts >= len(delays):
        return None
    delay = delays[scheduled_attempts]
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


# -- secrets ---------------------------------------------------------------------------------


def new_signing_secret() -> str:
    """`whsec_` + base64 of 24 random bytes, the form the Standard Webhooks libraries read."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _aad(endpoint_id: uuid.UUID, column: str) -> bytes:
    return f"webhook_endpoints:{endpoint_id}:{column}".encode()


def seal_secret(cipher: EnvelopeCipher, endpoint_id: uuid.UUID, secret: str) -> Sealed:
    return cipher.seal(secret.encode(), aad=_aad(endpoint_id, "secret"))


def signing_secrets(cipher: EnvelopeCipher, endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The current secret, and the previous one while its overlap lasts."""
    found = [
        cipher.open(
            Sealed(endpoint.secret_key_id, endpoint.secret_sealed),
            aad=_aad(endpoint.id, "secret"),
        ).decode()
    ]
    if (
        endpoint.previous_sealed is not None
        and endpoint.previous_key_id is not None
        and endpoint.previous_expires_at is not None
        and endpoint.previous_expires_at > now
    ):
        found.append(
            cipher.open(
                Sealed(endpoint.previous_key_id, endpoint.previous_sealed),
                aad=_aad(endpoint.id, "secret"),
            ).decode()
        )
    return found


def signature_header(
    secrets_: Sequence[str], *, message_id: str, timestamp: datetime, body: str
) -> str:
    """`v1,<sig>` per valid secret, space-separated (Standard Webhooks)."""
    return " ".join(Webhook(secret).sign(message_id, timestamp, body) for secret in secrets_)


def message_id(delivery_id: uuid.UUID) -> str:
    """The `webhook-id`: fixed per delivery, so every retry carries the same one."""
    return f"msg_{delivery_id.hex}"


# -- settings --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointChange:
    endpoint: WebhookEndpoint
    created: bool
    secret: str | None  # only when created (or rotated): shown this once
    changed_fields: tuple[str, ...]


def normalise_events(events: Sequence[str] | None) -> list[str] | None:
    if events is None:
        return None
    cleaned = sorted({e.strip().lower() for e in events})
    bad = [e for e in cleaned if not _EVENT_PATTERN.match(e)]
    if bad:
        raise InvalidRequest(
            f"Unknown event types {bad}: use payment.<status>, refund.<status>, order.<event> "
            "or a family wildcard such as payment.*",
            code="invalid_enabled_events",
        )
    return cleaned


def wants(endpoint: WebhookEndpoint, event_type: str) -> bool:
    if endpoint.enabled_events is None:
        return True
    family = event_type.split(".", 1)[0] + ".*"
    return event_type in endpoint.enabled_events or family in endpoint.enabled_events


async def get_endpoint(*, session: AsyncSession, user_id: uuid.UUID) -> WebhookEndpoint:
    endpoint = await store.endpoint_for_user(session, user_id)
    if endpoint is None:
        raise WebhookSettingsNotFound("No webhook endpoint is configured yet; PUT one first")
    return endpoint


async def put_endpoint(
    *,
    session: AsyncSession,
    cipher: EnvelopeCipher,
    policy: UrlPolicy,
    user_id: uuid.UUID,
    url: str,
    enabled_events: Sequence[str] | None,
    enabled: bool | None,
    fields_set: set[str],
) -> EndpointChange:
    """Create the merchant's endpoint (with a new secret) or update it; the row is locked."""
    await check_webhook_url(url, policy)
    events = normalise_events(enabled_events)
    existing = await store.endpoint_for_user(session, user_id, lock=True)
    if existing is None:
        endpoint_id = uuid.uuid4()
        secret = new_signing_secret()
        sealed = seal_secret(cipher, endpoint_id, secret)
        endpoint = await store.insert_endpoint(
            session,
            id=endpoint_id,
            user_id=user_id,
            url=url,
            enabled=True if enabled is None else enabled,
            enabled_events=events,
            secret_key_id=sealed.key_id,
            secret_sealed=sealed.blob,
        )
        if endpoint is None:  # a concurrent first PUT won: update that one instead
            return await put_endpoint(
                session=session,
                cipher=cipher,
                policy=policy,
                user_id=user_id,
                url=url,
                enabled_events=enabled_events,
                enabled=enabled,
                fields_set=fields_set,
            )
        return EndpointChange(endpoint, True, secret, ("url", "enabled_events", "enabled"))
    values: dict[str, Any] = {}
    if existing.url != url:
        values["url"] = url
    if "enabled_events" in fields_set and existing.enabled_events != events:
        values["enabled_events"] = events
    if enabled is not None and existing.enabled != enabled:
        values["enabled"] = enabled
        if enabled:
            values["disabled_reason"] = None
    if values:
        existing = await store.update_endpoint(session, existing.id, values)
    return EndpointChange(existing, False, None, tuple(sorted(values)))


async def rotate_secret(
    *,
    session: AsyncSession,
    cipher: EnvelopeCipher,
    user_id: uuid.UUID,
    overlap_seconds: int,
) -> tuple[WebhookEndpoint, str]:
    """A new current secret; the old one keeps signing for `overlap_seconds`."""
    endpoint = await store.endpoint_for_user(session, user_id, lock=True)
    if endpoint is None:
        raise WebhookSettingsNotFound("No webhook endpoint is configured yet; PUT one first")
    secret = new_signing_secret()
    sealed = seal_secret(cipher, endpoint.id, secret)
    updated = await store.update_endpoint(
        session,
        endpoint.id,
        {
            "secret_key_id": sealed.key_id,
            "secret_sealed": sealed.blob,
            "previous_key_id": endpoint.secret_key_id,
            "previous_sealed": endpoint.secret_sealed,
            "previous_expires_at": datetime.now(UTC) + timedelta(seconds=overlap_seconds),
        },
    )
    return updated, secret


async def reencrypt_secrets(*, session: AsyncSession, cipher: EnvelopeCipher) -> int:
    """Re-wrap every sealed secret not yet under the active key; returns how many."""
    count = 0
    for endpoint in await store.endpoints_not_under(session, cipher.active_key_id):
        aad = _aad(endpoint.id, "secret")
        values: dict[str, Any] = {}
        current = cipher.rewrap(Sealed(endpoint.secret_key_id, endpoint.secret_sealed), aad=aad)
        values["secret_key_id"], values["secret_sealed"] = current.key_id, current.blob
        if endpoint.previous_sealed is not None and endpoint.previous_key_id is not None:
            previous = cipher.rewrap(
                Sealed(endpoint.previous_key_id, endpoint.previous_sealed), aad=aad
            )
            values["previous_key_id"], values["previous_sealed"] = previous.key_id, previous.blob
        await store.update_endpoint(session, endpoint.id, values)
        count += 1
    return count


# -- events → deliveries ---------------------------------------------------------------------


def webhook_body(envelope: EventEnvelope) -> str:
    """`{type, timestamp, data}`: the event as the merchant sees it, serialised once."""
    return orjson.dumps(
        {
            "type": envelope.event_type,
            "timestamp": envelope.occurred_at.isoformat(),
            "data": envelope.payload,
        }
    ).decode()


async def record_webhook_deliveries(
    *, session: AsyncSession, envelopes: Sequence[EventEnvelope], first_delay_seconds: float
) -> int:
    """In the consumer's transaction: a delivery row per event for its merchant, if they want it.

    The batch's merchants' endpoints are read in one query and the rows written in one insert;
    one delivery per (endpoint, event) whatever is redelivered. Returns how many are new.
    """
    wanted: list[tuple[EventEnvelope, uuid.UUID]] = []
    for envelope in envelopes:
        if not envelope.event_type.startswith(WEBHOOK_EVENT_PREFIXES):
            continue
        payload = envelope.payload
        raw_user = payload.get("user_id") if isinstance(payload, dict) else None
        try:
            wanted.append((envelope, uuid.UUID(str(raw_user))))
        except ValueError:
            log.warning("event %s names no merchant; no webhook", envelope.event_id)
    if not wanted:
        return 0
    endpoints = await store.endpoints_for_users(session, {user for _, user in wanted})
    due = datetime.now(UTC) + timedelta(seconds=first_delay_seconds)
    rows = []
    for envelope, user_id in wanted:
        endpoint = endpoints.get(user_id)
        if endpoint is None or not endpoint.enabled or not wants(endpoint, envelope.event_type):
            continue
        rows.append(
            {
                "id": uuid.uuid4(),
                "endpoint_id": endpoint.id,
                "user_id": user_id,
                "event_id": envelope.event_id,
                "event_type": envelope.event_type,
                "body": webhook_body(envelope),
                "status": WebhookDeliveryStatus.PENDING,
                "next_attempt_at": due,
            }
        )
    return await store.insert_deliveries(session, rows)


async def record_webhook_delivery(
    *, session: AsyncSession, envelope: EventEnvelope, first_delay_seconds: float
) -> bool:
    """`record_webhook_deliveries` for one event: True when it queued a delivery."""
    count = await record_webhook_deliveries(
        session=session, envelopes=[envelope], first_delay_seconds=first_delay_seconds
    )
    return count > 0


# -- the log and manual retries --------------------------------------------------------------


async def list_deliveries(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    limit: int,
    cursor: tuple[datetime, uuid.UUID] | None,
    status: WebhookDeliveryStatus | None,
) -> Sequence[WebhookDelivery]:
    return await store.list_deliveries(session, user_id, limit=limit, before=cursor, status=status)


async def get_delivery(
    *, session: AsyncSession, user_id: uuid.UUID, delivery_id: uuid.UUID
) -> WebhookDelivery:
    delivery = await store.delivery_of_user(session, user_id, delivery_id)
    if delivery is None:
        raise WebhookDeliveryNotFound(f"No webhook delivery {delivery_id}")
    return delivery


async def request_manual_retry(
    *, session: AsyncSession, user_id: uuid.UUID, delivery_id: uuid.UUID
) -> WebhookDelivery:
    """Mark the merchant's own delivery for one send now, whatever its status (404 otherwise)."""
    delivery = await store.request_manual_retry(session, user_id, delivery_id)
    if delivery is None:
        raise WebhookDeliveryNotFound(f"No webhook delivery {delivery_id}")
    return delivery
