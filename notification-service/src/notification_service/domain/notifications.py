"""Notifications from payment events, the customer's list, and an operator's replay."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.domain.errors import NotDeadLettered, NotificationNotFound
from notification_service.domain.preferences import preferences_of_users
from notification_service.domain.rendering import NOTIFIED_EVENT_TYPES, subject_for
from notification_service.domain.status import NotificationStatus
from notification_service.store import notifications as store
from notification_service.store.preferences import users_with_subscription
from notification_service.store.tables import Channel, Notification
from paygate_common.events import EventEnvelope, PaymentEvent

log = logging.getLogger("notification_service.notifications")


def is_notified(event_type: str) -> bool:
    return event_type in NOTIFIED_EVENT_TYPES


async def record_payment_notifications(
    *, session: AsyncSession, envelopes: Sequence[EventEnvelope]
) -> int:
    """Queue one notification per channel each customer wants, for the payment events worth telling.

    Email and SMS follow the preferences (the phone is looked up at send time); push also needs
    a subscription. The batch's customers' preferences and subscriptions are read in one query
    each and every row is written in one insert; the unique (event_id, channel) keeps a
    redelivery that slipped past the inbox to one each. Returns how many rows were created.
    """
    notified = [
        (envelope, PaymentEvent.model_validate(envelope.payload))
        for envelope in envelopes
        if is_notified(envelope.event_type)
    ]
    if not notified:
        return 0
    users = {payment.user_id for _, payment in notified}
    wanted = await preferences_of_users(session=session, user_ids=users)
    subscribed = await users_with_subscription(
        session, {user for user in users if wanted[user].wants(Channel.PUSH)}
    )
    now = datetime.now(UTC)
    rows = []
    for envelope, payment in notified:
        for channel in Channel:
            if not wanted[payment.user_id].wants(channel):
                continue
            if channel is Channel.PUSH and payment.user_id not in subscribed:
                continue
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "event_id": envelope.event_id,
                    "event_type": envelope.event_type,
                    "channel": channel,
                    "user_id": payment.user_id,
                    "order_id": payment.order_id,
                    "payment_id": payment.payment_id,
                    "status": NotificationStatus.QUEUED,
                    "subject": subject_for(envelope.event_type, payment),
                    "source_event": envelope.model_dump(mode="json"),
                    "attempts": 0,
                    "next_attempt_at": now,
                }
            )
    created = await store.insert_notifications(session, rows)
    for row in rows:
        if (row["event_id"], str(row["channel"])) not in created:
            log.info("event %s already has a %s notification", row["event_id"], row["channel"])
    return len(created)


async def record_payment_notification(*, session: AsyncSession, envelope: EventEnvelope) -> bool:
    """`record_payment_notifications` for one event: True when it queued anything."""
    return await record_payment_notifications(session=session, envelopes=[envelope]) > 0


async def list_notifications(
    *, session: AsyncSession, user_id: uuid.UUID, limit: int, offset: int
) -> tuple[Sequence[Notification], int]:
    return await store.list_for_user(session, user_id, limit=limit, offset=offset)


async def list_dead_letters(
    *, session: AsyncSession, limit: int, offset: int
) -> tuple[Sequence[Notification], int]:
    return await store.list_dead_letters(session, limit=limit, offset=offset)


async def replay_dead_letter(*, session: AsyncSession, notification_id: uuid.UUID) -> Notification:
    """Put a dead-lettered notification back in the queue with a fresh attempt budget."""
    replayed = await store.requeue_dead_letter(session, notification_id)
    if replayed is not None:
        log.info("notification %s replayed by an operator", notification_id)
        return replayed
    if await store.get_notification(session, notification_id) is None:
        raise NotificationNotFound(f"No notification {notification_id}")
    raise NotDeadLettered("Only a dead-lettered notification can be replayed")
