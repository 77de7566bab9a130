"""`notification.dlq`: a notification that could not be delivered, published through the outbox."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.store.tables import Notification
from paygate_common.events import NOTIFICATION_DLQ, PAYMENT_EVENT, EventEnvelope
from paygate_common.outbox import add_event

DEAD_LETTERED_EVENT_TYPE = "notification.dead_lettered"
SERVICE_NAME = "notification-service"
# A delivery failure happens after the event was consumed: no Kafka position is involved.
NO_KAFKA_POSITION = -1


def dead_letter_envelope(notification: Notification, *, error: str, attempts: int) -> EventEnvelope:
    """The dead letter, shaped like the consumer runner's `DeadLetter` so one reader handles both.

    The extra top-level fields (`envelope`, `error`, `attempts`, ...) are what
    `paygate_common.consumer.parse_dead_letter` reads; `payload` says which notification failed.
    """
    source = EventEnvelope.model_validate(notification.source_event)
    return EventEnvelope(
        event_type=DEAD_LETTERED_EVENT_TYPE,
        producer=SERVICE_NAME,
        correlation_id=source.correlation_id,
        aggregate_id=source.aggregate_id,
        payload={
            "notification_id": str(notification.id),
            "channel": notification.channel,
            "source_event_id": str(source.event_id),
            "source_event_type": source.event_type,
            "order_id": str(notification.order_id),
            "payment_id": str(notification.payment_id),
            "user_id": str(notification.user_id),
            "error": error,
            "attempts": attempts,
        },
        # DeadLetter-compatible fields (EventEnvelope allows extras).
        envelope=source.model_dump(mode="json"),
        error=error,
        attempts=attempts,
        original_topic=PAYMENT_EVENT,
        partition=NO_KAFKA_POSITION,
        offset=NO_KAFKA_POSITION,
        consumer=SERVICE_NAME,
        dead_lettered_at=datetime.now(UTC).isoformat(),
    )


async def publish_dead_letter(
    session: AsyncSession, notification: Notification, *, error: str, attempts: int
) -> EventEnvelope:
    """Write the dead letter to the outbox in the caller's transaction (with the status change)."""
    envelope = dead_letter_envelope(notification, error=error, attempts=attempts)
    await add_event(session, envelope, topic=NOTIFICATION_DLQ)
    return envelope
