"""The consumer of `payment.event`, `order.event` and `order.create`: customer notifications and
merchant webhook deliveries, both written in the transaction that consumed the event."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.domain.notifications import record_payment_notifications
from notification_service.domain.webhooks import record_webhook_deliveries
from notification_service.settings import Settings
from notification_service.wakeups import NOTIFICATIONS_DUE, WEBHOOKS_DUE, wake_after_commit
from paygate_common.consumer import BatchHandler, Handler
from paygate_common.eventing import ConsumerSpec
from paygate_common.events import (
    NOTIFICATION_DLQ,
    ORDER_CREATE,
    ORDER_EVENT,
    PAYMENT_EVENT,
    EventEnvelope,
)

CONSUMER_NAME = "notification-service"


def event_batch_handler(settings: Settings) -> BatchHandler:
    """A consumed batch: its notifications in one insert, its webhook deliveries in another."""
    first_delay = settings.webhook_retry_delays[0]

    async def on_batch(session: AsyncSession, envelopes: Sequence[EventEnvelope]) -> None:
        """Runs in the batch's unit of work, after the inbox rows: redeliveries never get here."""
        if await record_payment_notifications(session=session, envelopes=envelopes):
            await wake_after_commit(session, NOTIFICATIONS_DUE)
        if await record_webhook_deliveries(
            session=session, envelopes=envelopes, first_delay_seconds=first_delay
        ):
            await wake_after_commit(session, WEBHOOKS_DUE)

    return on_batch


def event_handler(settings: Settings) -> Handler:
    """One event: the batch handler with a batch of one (the runner's fallback path)."""
    on_batch = event_batch_handler(settings)

    async def on_event(session: AsyncSession, envelope: EventEnvelope) -> None:
        await on_batch(session, (envelope,))

    return on_event


def payment_event_consumer(settings: Settings) -> ConsumerSpec:
    return ConsumerSpec(
        name=CONSUMER_NAME,
        topics=[PAYMENT_EVENT, ORDER_EVENT, ORDER_CREATE],
        handler=event_handler(settings),
        batch_handler=event_batch_handler(settings),
        dlq_topic=NOTIFICATION_DLQ,
        max_attempts=settings.consumer_max_attempts,
    )
