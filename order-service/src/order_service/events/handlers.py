"""Consumed topics: `payment.event` settles orders (the runner dedupes by event id)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from order_service.domain.orders import apply_payment_event, apply_payment_events
from paygate_common.eventing import ConsumerSpec
from paygate_common.events import EventEnvelope, PaymentEvent
from paygate_common.events.topics import ORDER_DLQ, PAYMENT_EVENT

log = logging.getLogger("order_service.events")

CONSUMER_NAME = "order-service"


def payment_event_of(envelope: EventEnvelope) -> PaymentEvent | None:
    """The `payment.<status>` event an envelope carries; None for what the topic also carries.

    A payload that does not parse raises: the runner retries it and then dead-letters it.
    """
    if envelope.event_type.startswith("refund."):
        return None  # refunds move an order through the payment's own event (payment.refunded)
    if not envelope.event_type.startswith("payment."):
        log.warning("unexpected event type %s on %s skipped", envelope.event_type, PAYMENT_EVENT)
        return None
    return PaymentEvent.model_validate(envelope.payload)


async def on_payment_event(session: AsyncSession, envelope: EventEnvelope) -> None:
    """Apply one `payment.<status>` event; unknown event types on the topic are skipped."""
    event = payment_event_of(envelope)
    if event is not None:
        await apply_payment_event(session=session, event=event)


async def on_payment_events(session: AsyncSession, envelopes: Sequence[EventEnvelope]) -> None:
    """A consumed batch: the same moves as `on_payment_event` one by one, in one UPDATE a round."""
    events = [event for e in envelopes if (event := payment_event_of(e)) is not None]
    await apply_payment_events(session=session, events=events)


def payment_consumer(*, max_attempts: int) -> ConsumerSpec:
    return ConsumerSpec(
        name=CONSUMER_NAME,
        topics=[PAYMENT_EVENT],
        handler=on_payment_event,
        batch_handler=on_payment_events,
        dlq_topic=ORDER_DLQ,
        max_attempts=max_attempts,
    )


__all__ = ["CONSUMER_NAME", "on_payment_event", "on_payment_events", "payment_consumer"]
