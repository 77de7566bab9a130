"""Consumed topics: `payment.event` settles orders (the runner dedupes by event id)."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from order_service.domain.orders import apply_payment_event
from paygate_common.eventing import ConsumerSpec
from paygate_common.events import EventEnvelope, PaymentEvent
from paygate_common.events.topics import ORDER_DLQ, PAYMENT_EVENT

log = logging.getLogger("order_service.events")

CONSUMER_NAME = "order-service"


async def on_payment_event(session: AsyncSession, envelope: EventEnvelope) -> None:
    """Apply one `payment.<status>` event; unknown event types on the topic are skipped."""
    if envelope.event_type.startswith("refund."):
        return  # refunds move an order through the payment's own event (payment.refunded)
    if not envelope.event_type.startswith("payment."):
        log.warning("unexpected event type %s on %s skipped", envelope.event_type, PAYMENT_EVENT)
        return
    # A payload that does not parse raises: the runner retries it and then dead-letters it.
    event = PaymentEvent.model_validate(envelope.payload)
    await apply_payment_event(session=session, event=event)


def payment_consumer(*, max_attempts: int) -> ConsumerSpec:
    return ConsumerSpec(
        name=CONSUMER_NAME,
        topics=[PAYMENT_EVENT],
        handler=on_payment_event,
        dlq_topic=ORDER_DLQ,
        max_attempts=max_attempts,
    )


__all__ = ["CONSUMER_NAME", "on_payment_event", "payment_consumer"]
