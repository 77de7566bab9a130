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
from paygate_common.events import PaymentStatus
from payment_service.connectors.base import Connector, WebhookUpdate
from payment_service.domain import payments as domain
from payment_service.domain import refunds
from payment_service.domain.states import PaymentState, sources_of
from payment_service.store import payments as store

log = logging.getLogger("payment_service.webhooks")


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
    session: AsyncSession,
    event: Mapping[str, Any],
    *,
    connector: Connector,
    capture_window_seconds: float = domain.DEFAULT_CAPTURE_WINDOW_SECONDS,
) -> bool:
    """Apply a verified event once; returns False for an event id seen before.

    The event moves the same state machine our own provider answers do, through the same
    guarded functions: whichever of the two arrives second finds the move already made and
    changes (and publishes) nothing.
    """
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
    update = connector.parse_webhook(event)
    if update is None:
        return True

    payment = await _find_payment(session, update.provider_reference, update.payment_id)
    if payment is None:
        log.info("webhook %s (%s) is for no payment of ours", event_id, event_type)
        return True
    await store.link_webhook_event(session, event_id, payment.id)
    await apply_update(
        session, payment, update, event_id=event_id, capture_window_seconds=capture_window_seconds
    )
    return True


# "Authorised" is older news while our capture or void is on the wire (PayPal sends the
# authorisation's event after the payer approved): applied, it would send the payment back to
# requires_capture and our operation's answer would find it moved. Only that answer (or an
# event of its outcome) settles it. Checked under the payment's row lock in apply_result.
AUTHORISED_NEWS_SOURCES = sources_of(PaymentState.REQUIRES_CAPTURE) - {
    PaymentState.CAPTURING,
    PaymentState.CANCELLING,
}


async def apply_update(
    session: AsyncSession,
    payment: Any,
    update: WebhookUpdate,
    *,
    event_id: str,
    capture_window_seconds: float = domain.DEFAULT_CAPTURE_WINDOW_SECONDS,
) -> None:
    """Apply what a verified provider event says about one of our payments (any provider),
    through the same guarded functions as our own provider answers."""
    if update.payment is not None:
        # Never trust an event that disagrees with what we asked for.
        if update.amount != payment.amount or update.currency != payment.currency:
            log.error(
                "webhook %s: amount/currency differ from payment %s; ignored", event_id, payment.id
            )
            return
        captured = None
        if payment.status == PaymentState.CAPTURING:
            capture = await store.open_operation(session, payment.id, "capture")
            captured = capture.amount if capture is not None else None
        authorised = update.payment.status is PaymentStatus.REQUIRES_CAPTURE
        row = await domain.apply_result(
            session,
            payment.id,
            update.payment,
            from_states=tuple(AUTHORISED_NEWS_SOURCES) if authorised else None,
            captured=captured,
            capture_window_seconds=capture_window_seconds,
        )
        if row is None:
            log.info(
                "webhook %s: payment %s stays %s (not moved to %s)",
                event_id,
                payment.id,
                payment.status,
                update.payment.status.value,
            )

    for result in update.refunds:
        ours = None
        if result.refund_id is not None:
            ours = await store.get_refund(session, result.refund_id)
        if ours is None and result.provider_reference:
            ours = await store.get_refund_by_reference(session, result.provider_reference)
        if ours is None:
            await refunds.record_external_refund(session, payment.id, result)
            continue
        if ours.payment_id != payment.id:
            log.error("webhook %s: refund %s is not payment %s's", event_id, ours.id, payment.id)
            continue
        settled = await refunds.settle_refund(session, ours.id, result)
        if settled is not None:
            await store.close_refund_operation(
                session,
                ours.id,
                status=settled.status,
                provider_reference=result.provider_reference,
            )


async def _find_payment(
    session: AsyncSession,
    reference: str | None,
    payment_id: uuid.UUID | None,
    *,
    provider: str = "stripe",
) -> Any:
    """The provider's payment of ours, by its reference or by our id (never another's)."""
    if reference:
        payment = await store.get_payment_by_reference(session, provider, reference)
        if payment is not None:
            return payment
    if payment_id is None:
        return None
    payment = await store.get_payment(session, payment_id)
    if payment is None or payment.provider != provider:
        return None
    return payment


find_payment = _find_payment
