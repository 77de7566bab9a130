"""Queries on `notifications` and `delivery_attempts`; every status change is a guarded UPDATE."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Update, case, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.domain.status import NOTIFICATION_TRANSITIONS as T
from notification_service.domain.status import (
    NotificationStatus,
    allowed_from,
    check_transition,
)
from notification_service.store.tables import DeliveryAttempt, Notification
from paygate_common.worker import claim_due as claim_due_rows


async def insert_notification(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Insert unless (event_id, channel) exists; True when a row was created."""
    stmt = (
        insert(Notification)
        .values(**values)
        .on_conflict_do_nothing(constraint="uq_notifications_event_id_channel")
        .returning(Notification.id)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def insert_notifications(
    session: AsyncSession, rows: Sequence[dict[str, Any]]
) -> set[tuple[uuid.UUID, str]]:
    """A batch's rows in one statement, skipping existing (event_id, channel) pairs; returns
    the (event_id, channel) pairs it created."""
    if not rows:
        return set()
    stmt = (
        insert(Notification)
        .values(list(rows))
        .on_conflict_do_nothing(constraint="uq_notifications_event_id_channel")
        .returning(Notification.event_id, Notification.channel)
    )
    return {(event_id, str(channel)) for event_id, channel in await session.execute(stmt)}


async def claim_due(
    session: AsyncSession, *, limit: int, lease_seconds: float
) -> Sequence[Notification]:
    """Move up to `limit` due rows to `sending` and count the attempt; replicas skip locked rows.

    The shared claim leases `next_attempt_at` itself: while a row is `sending` it holds the end
    of its lease, so a row whose sender died is due again when the lease runs out.
    """
    leased = await claim_due_rows(
        session,
        Notification.__table__,  # type: ignore[arg-type]
        limit=limit,
        lease_seconds=lease_seconds,
        where=[Notification.status.in_(allowed_from(T, NotificationStatus.SENDING))],
        due_column="next_attempt_at",
        lease_column="next_attempt_at",
    )
    if not leased:
        return []
    stmt = (
        update(Notification)
        .where(Notification.id.in_([row.id for row in leased]))
        .values(
            status=NotificationStatus.SENDING,
            attempts=Notification.attempts + 1,
            last_attempt_at=func.now(),
            updated_at=func.now(),
        )
        .returning(Notification)
        .execution_options(synchronize_session=False)
    )
    return (await session.scalars(stmt)).all()


async def set_recipient(session: AsyncSession, notification_id: uuid.UUID, recipient: str) -> None:
    await session.execute(
        update(Notification)
        .where(Notification.id == notification_id)
        .values(recipient=recipient)
        .execution_options(synchronize_session=False)
    )


def _finish_sending(notification_id: uuid.UUID, attempt: int, **values: Any) -> Update:
    """Leave `sending` only if this sender still holds attempt `attempt` (no one reclaimed it)."""
    target = values["status"]
    if isinstance(target, NotificationStatus):
        check_transition(T, NotificationStatus.SENDING, target)
    return (
        update(Notification)
        .where(
            Notification.id == notification_id,
            Notification.status == NotificationStatus.SENDING,
            Notification.attempts == attempt,
        )
        .values(updated_at=func.now(), **values)
        .execution_options(synchronize_session=False)
    )


async def mark_sent(
    session: AsyncSession, notification_id: uuid.UUID, *, attempt: int, recipient: str
) -> bool:
    """`sending` → `sent`; False if another sender reclaimed the row in the meantime."""
    statement = _finish_sending(
        notification_id,
        attempt,
        status=NotificationStatus.SENT,
        sent_at=func.now(),
        recipient=recipient,
        last_error=None,
    )
    result = await session.execute(statement.returning(Notification.id))
    return result.scalar_one_or_none() is not None


async def mark_failed(
    session: AsyncSession,
    notification_id: uuid.UUID,
    *,
    attempt: int,
    error: str,
    retry_in_seconds: float,
    recipient: str | None,
) -> bool:
    """`sending` → `failed` with the next attempt scheduled."""
    statement = _finish_sending(
        notification_id,
        attempt,
        status=NotificationStatus.FAILED,
        last_error=error,
        next_attempt_at=func.now() + timedelta(seconds=retry_in_seconds),
        recipient=func.coalesce(recipient, Notification.recipient),
    )
    result = await session.execute(statement.returning(Notification.id))
    return result.scalar_one_or_none() is not None


async def mark_skipped(
    session: AsyncSession, notification_id: uuid.UUID, *, attempt: int, reason: str
) -> bool:
    """`sending` → `skipped`: there was nothing to send to (no phone, no push subscription)."""
    statement = _finish_sending(
        notification_id, attempt, status=NotificationStatus.SKIPPED, last_error=reason
    )
    result = await session.execute(statement.returning(Notification.id))
    return result.scalar_one_or_none() is not None


async def hand_back(
    session: AsyncSession,
    notification_id: uuid.UUID,
    *,
    attempt: int,
    error: str,
    retry_in_seconds: float,
) -> bool:
    """`sending` → back where it was, the claimed attempt given back: a dependency (user-service)
    was down, which says nothing about whether this notification can be delivered."""
    statement = _finish_sending(
        notification_id,
        attempt,
        status=case(
            (Notification.attempts <= 1, NotificationStatus.QUEUED.value),
            else_=NotificationStatus.FAILED.value,
        ),
        attempts=Notification.attempts - 1,
        last_error=error,
        next_attempt_at=func.now() + timedelta(seconds=retry_in_seconds),
    )
    result = await session.execute(statement.returning(Notification.id))
    return result.scalar_one_or_none() is not None


async def mark_dead_lettered(
    session: AsyncSession,
    notification_id: uuid.UUID,
    *,
    attempt: int,
    error: str,
    recipient: str | None,
) -> Notification | None:
    """`sending` → `dead_lettered`; the row as updated, or None if the guard did not match."""
    statement = _finish_sending(
        notification_id,
        attempt,
        status=NotificationStatus.DEAD_LETTERED,
        last_error=error,
        dead_lettered_at=func.now(),
        recipient=func.coalesce(recipient, Notification.recipient),
    )
    return (await session.scalars(statement.returning(Notification))).one_or_none()


async def record_attempt(
    session: AsyncSession,
    *,
    notification_id: uuid.UUID,
    attempt_no: int,
    replay_no: int,
    outcome: str,
    error: str | None,
    started_at: datetime,
) -> None:
    await session.execute(
        insert(DeliveryAttempt)
        .values(
            notification_id=notification_id,
            attempt_no=attempt_no,
            replay_no=replay_no,
            outcome=outcome,
            error=error,
            started_at=started_at,
        )
        .on_conflict_do_nothing(constraint="uq_delivery_attempt")
    )


# An operator replays only what was dead-lettered, and the table must allow it.
REPLAYABLE = NotificationStatus.DEAD_LETTERED
check_transition(T, REPLAYABLE, NotificationStatus.QUEUED)


async def requeue_dead_letter(
    session: AsyncSession, notification_id: uuid.UUID
) -> Notification | None:
    """`dead_lettered` → `queued` with a fresh attempt budget; None if it was not dead-lettered."""
    return (
        await session.scalars(
            update(Notification)
            .where(
                Notification.id == notification_id,
                Notification.status == REPLAYABLE,
            )
            .values(
                status=NotificationStatus.QUEUED,
                attempts=0,
                next_attempt_at=func.now(),
                replayed_at=func.now(),
                replay_count=Notification.replay_count + 1,
                updated_at=func.now(),
            )
            .returning(Notification)
            .execution_options(synchronize_session=False)
        )
    ).one_or_none()


async def get_notification(
    session: AsyncSession, notification_id: uuid.UUID
) -> Notification | None:
    return await session.get(Notification, notification_id)


async def list_for_user(
    session: AsyncSession, user_id: uuid.UUID, *, limit: int, offset: int
) -> tuple[Sequence[Notification], int]:
    """The user's notifications, newest first, and how many there are in all."""
    rows = (
        await session.scalars(
            select(Notification)
            .where(Notification.user_id == user_id)
            .order_by(Notification.created_at.desc(), Notification.id.desc())
            .limit(limit)
            .offset(offset)
        )
    ).all()
    total = (
        await session.execute(
            select(func.count()).select_from(Notification).where(Notification.user_id == user_id)
        )
    ).scalar_one()
    return rows, total


async def list_dead_letters(
    session: AsyncSession, *, limit: int, offset: int
) -> tuple[Sequence[Notification], int]:
    """Dead-lettered notifications, most recently dead-lettered first."""
    dead = Notification.status == NotificationStatus.DEAD_LETTERED
    rows = (
        await session.scalars(
            select(Notification)
            .where(dead)
            .order_by(Notification.dead_lettered_at.desc(), Notification.id.desc())
            .limit(limit)
            .offset(offset)
        )
    ).all()
    total = (
        await session.execute(select(func.count()).select_from(Notification).where(dead))
    ).scalar_one()
    return rows, total


async def attempts_of(
    session: AsyncSession, notification_id: uuid.UUID
) -> Sequence[DeliveryAttempt]:
    return (
        await session.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.notification_id == notification_id)
            .order_by(DeliveryAttempt.id)
        )
    ).all()
