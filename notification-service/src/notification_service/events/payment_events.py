"""The consumer of `payment.event`, `order.event` and `order.create`: customer notifications and
merchant webhook deliveries, both written in the transaction that consumed the event."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.domain.notifications import record_payment_notification
from notification_service.domain.webhooks import record_webhook_delivery
from notification_service.settings import Settings
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
_WAKE_REGISTERED = "notification-service:wake-after-commit"


def event_handler(settings: Settings, *, on_queued: Callable[[], None] | None = None) -> Handler:
    first_delay = settings.webhook_retry_delays[0]

    async def on_event(session: AsyncSession, envelope: EventEnvelope) -> None:
        """Runs in the batch's unit of work, after the inbox row: a redelivery never gets here."""
        queued = await record_payment_notification(session=session, envelope=envelope)
        queued |= await record_webhook_delivery(
            session=session, envelope=envelope, first_delay_seconds=first_delay
        )
        if queued and on_queued is not None and not session.info.get(_WAKE_REGISTERED):
            # Wake the senders once this batch has committed: not sooner (they would find
            # nothing yet) and not a poll interval later.
            session.info[_WAKE_REGISTERED] = True
            sa_event.listen(session.sync_session, "after_commit", lambda _s: on_queued(), once=True)

    return on_event


def payment_event_consumer(
    settings: Settings, *, on_queued: Callable[[], None] | None = None
) -> ConsumerSpec:
    return ConsumerSpec(
        name=CONSUMER_NAME,
        topics=[PAYMENT_EVENT, ORDER_EVENT, ORDER_CREATE],
        handler=event_handler(settings, on_queued=on_queued),
        dlq_topic=NOTIFICATION_DLQ,
        max_attempts=settings.consumer_max_attempts,
    )
