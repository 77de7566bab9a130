"""The consumer of `payment.event`, `order.event` and `order.create`: customer notifications and
merchant webhook deliveries, both written in the transaction that consumed the event."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.domain.notifications import record_payment_notification
from notification_service.domain.webhooks import record_webhook_delivery
from notification_service.settings import Settings
from notification_service.wakeups import NOTIFICATIONS_DUE, WEBHOOKS_DUE, wake_after_commit
from paygate_common.consumer import Handler
from paygate_common.eventing import ConsumerSpec
from paygate_common.events import (
    NOTIFICATION_DLQ,
    ORDER_CREATE,
    ORDER_EVENT,
    PAYMENT_EVENT,
    EventEnvelope,
)

CONSUMER_NAME = "notification-service"


def event_handler(settings: Settings) -> Handler:
    first_delay = settings.webhook_retry_delays[0]

    async def on_event(session: AsyncSession, envelope: EventEnvelope) -> None:
        """Runs in the batch's unit of work, after the inbox row: a redelivery never gets here."""
        if await record_payment_notification(session=session, envelope=envelope):
            await wake_after_commit(session, NOTIFICATIONS_DUE)
        if await record_webhook_delivery(
            session=session, envelope=envelope, first_delay_seconds=first_delay
        ):
            await wake_after_commit(session, WEBHOOKS_DUE)

    return on_event


def payment_event_consumer(settings: Settings) -> ConsumerSpec:
    return ConsumerSpec(
        name=CONSUMER_NAME,
        topics=[PAYMENT_EVENT, ORDER_EVENT, ORDER_CREATE],
        handler=event_handler(settings),
        dlq_topic=NOTIFICATION_DLQ,
        max_attempts=settings.consumer_max_attempts,
    )
