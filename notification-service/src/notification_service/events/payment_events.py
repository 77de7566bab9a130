"""`payment.event` consumer: each succeeded/failed/requires_action/refunded event queues an email."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.domain.notifications import record_payment_notification
from notification_service.settings import Settings
from paygate_common.eventing import ConsumerSpec
from paygate_common.events import NOTIFICATION_DLQ, PAYMENT_EVENT, EventEnvelope

CONSUMER_NAME = "notification-service"


async def on_payment_event(session: AsyncSession, envelope: EventEnvelope) -> None:
    """Runs in the batch's unit of work, after the inbox row: a redelivery never gets here."""
    await record_payment_notification(session=session, envelope=envelope)


def payment_event_consumer(settings: Settings) -> ConsumerSpec:
    return ConsumerSpec(
        name=CONSUMER_NAME,
        topics=[PAYMENT_EVENT],
        handler=on_payment_event,
        dlq_topic=NOTIFICATION_DLQ,
        max_attempts=settings.consumer_max_attempts,
    )
