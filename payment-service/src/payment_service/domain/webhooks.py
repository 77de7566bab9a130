"""Stripe webhooks: signature verification (HMAC-SHA256, rotation, tolerance) and applying events."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from paygate_common.errors import PaygateError
from payment_service.connectors.base import Connector
from payment_service.domain import payments as domain
from payment_service.store import payments as store

log = logging.getLogger("payment_service.webhooks")

# The PaymentIntent events that move a payment; others are acknowledged and ignored.
HANDLED_EVENTS = frozenset(
    {
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.requires_action",
        "payment_intent.processing",
        "payment_intent.canceled",
    }
)


class InvalidSignature(PaygateError):
    status_code, code, title = 400, "invalid_signature", "Webhook signature is not valid"


class StaleSignature(PaygateError):
    status_code, code, title = 400, "stale_signature", "Webhook timestamp is outside the tolerance"


class InvalidWebhookEvent(PaygateError):
    status_code, code, title = 400, "invalid_webhook_event", "Webhook body is not a Stripe event"


def verify_stripe_signature(
    payload: bytes,
    header: str | None,
    secrets: Iterable[str],
    *,
    tolerance_seconds: int,
    now: float | None = None,
) -> int:
    """Check `Stripe-Signature: t=…,v1=…[,v1=…]`; returns the signed timestamp.

    Any `v1` matching any of `secrets` passes (rotation: the provider may sign with both the old
    and the new secret, and we may know both). Timestamps further than `tolerance_seconds` from
    now, in either direction, are refused even with a valid signature (replays).
    """
    if not header:
        raise InvalidSignature("The Stripe-Signature header is missing")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise InvalidSignature("The signature timestamp is not a number") from None
        elif key == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise InvalidSignature("The Stripe-Signature header has no timestamp or no v1 signature")
    signed = str(timestamp).encode() + b"." + payload
    matched = False
    for secret in secrets:
        if not secret:
            continue
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        for candidate in signatures:
            # Every comparison runs in constant time, and all of them run.
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise InvalidSignature("No signature matches the webhook secret")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise StaleSignature("The signature timestamp is too old or in the future")
    return timestamp


async def apply_stripe_event(
    session: AsyncSession, event: Mapping[str, Any], *, connector: Connector
) -> bool:
    """Apply a verified event once; returns False for an event id seen before."""
    event_id = event.get("id")
    event_type = event.get("type")
    data = event.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if (
        not isinstance(event_id, str)
        or not isinstance(event_type, str)
        or not isinstance(obj, Mapping)
    ):
        raise InvalidWebhookEvent("The event has no id, type or data.object")
    if not await store.record_webhook_event(
        session, event_id=event_id, provider="stripe", event_type=event_type
    ):
        log.info("webhook %s (%s) already applied", event_id, event_type)
        return False
    if event_type not in HANDLED_EVENTS:
        return True

    payment = await _find_payment(session, obj)
    if payment is None:
        log.info("webhook %s (%s) is for no payment of ours", event_id, event_type)
        return True
    await store.link_webhook_event(session, event_id, payment.id)
    # Never trust an event that disagrees with what we asked for.
    if (
        obj.get("amount") != payment.amount
        or str(obj.get("currency", "")).lower() != payment.currency
    ):
        log.error(
            "webhook %s: amount/currency differ from payment %s; ignored", event_id, payment.id
        )
        return True

    result = connector.parse_authorize_response(obj)
    row = await domain.apply_result(session, payment.id, result)
    if row is None:
        log.info(
            "webhook %s: payment %s stays %s (not moved to %s)",
            event_id,
            payment.id,
            payment.status,
            result.status.value,
        )
    return True


async def _find_payment(session: AsyncSession, obj: Mapping[str, Any]) -> Any:
    reference = obj.get("id")
    if isinstance(reference, str):
        payment = await store.get_payment_by_reference(session, "stripe", reference)
        if payment is not None:
            return payment
    raw_id = (obj.get("metadata") or {}).get("payment_id")
    try:
        payment_id = uuid.UUID(str(raw_id))
    except ValueError:
        return None
    payment = await store.get_payment(session, payment_id)
    if payment is None or payment.provider != "stripe":
        return None
    return payment
