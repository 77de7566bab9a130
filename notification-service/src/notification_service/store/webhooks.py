"""Queries on webhook endpoints, deliveries and attempts; a delivery leaves a claim only through
the guarded UPDATE in `finish_attempt`."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.domain.status import WEBHOOK_SCHEDULED, WebhookDeliveryStatus
from notification_service.store.tables import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)


async def endpoint_for_user(
    session: AsyncSession, user_id: uuid.UUID, *, lock: bool = False
) -> WebhookEndpoint | None:
    stmt = select(WebhookEndpoint).where(WebhookEndpoint.user_id == user_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).one_or_none()


async def endpoints_for_users(
    session: AsyncSession, user_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, WebhookEndpoint]:
    """Several merchants' endpoints (one each at most) in one query."""
    if not user_ids:
        return {}
    rows = await session.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.user_id.in_(sorted(user_ids)))
    )
    return {row.user_id: row for row in rows}


async def insert_endpoint(session: AsyncSession, **values: Any) -> WebhookEndpoint | None:
    stmt = (
        insert(WebhookEndpoint)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["user_id"])
        .returning(WebhookEndpoint)
    )
    return (await session.scalars(stmt)).one_or_none()


async def update_endpoint(
    session: AsyncSession, endpoint_id: uuid.UUID, values: dict[str, Any]
) -> WebhookEndpoint:
    stmt = (
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id)
        .values(updated_at=func.now(), **values)
        .returning(WebhookEndpoint)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return (await session.scalars(stmt)).one()


async def endpoints_not_under(session: AsyncSession, key_id: str) -> Sequence[WebhookEndpoint]:
    return (
        await session.scalars(
            select(WebhookEndpoint)
            .where(
                or_(
                    WebhookEndpoint.secret_key_id != key_id,
                    WebhookEndpoint.previous_key_id != key_id,
                )
            )
            .with_for_update()
        )
    ).all()


async def disable_endpoint(session: AsyncSession, endpoint_id: uuid.UUID, reason: str) -> None:
    await session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id)
        .values(enabled=False, disabled_reason=reason, updated_at=func.now())
    )


async def insert_deliveries(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> int:
    """A batch's deliveries in one statement, one per (endpoint, event); returns how many new."""
    if not rows:
        return 0
    stmt = (
        insert(WebhookDelivery)
        .values(list(rows))
        .on_conflict_do_nothing(constraint="uq_webhook_deliveries_endpoint_event")
        .returning(WebhookDelivery.id)
    )
    return len((await session.execute(stmt)).all())


async def insert_delivery(session: AsyncSession, **values: Any) -> bool:
    """One delivery per (endpoint, event): a redelivered event adds nothing."""
    stmt = (
        insert(WebhookDelivery)
        .values(**values)
        .on_conflict_do_nothing(constraint="uq_webhook_deliveries_endpoint_event")
        .returning(WebhookDelivery.id)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def lock_due(
    session: AsyncSession, *, limit: int, busy_endpoints: Collection[uuid.UUID]
) -> Sequence[tuple[uuid.UUID, uuid.UUID]]:
    """Lock up to `limit` due deliveries (scheduled on an enabled endpoint, or a manual retry)
    as `(delivery_id, endpoint_id)`, oldest due first.

    `FOR UPDATE SKIP LOCKED` lets replicas share the work; `busy_endpoints` (this process
    already has as many sends in flight to them as allowed) are left alone.
    """
    now = func.now()
    stmt = (
        select(WebhookDelivery.id, WebhookDelivery.endpoint_id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(
            or_(
                WebhookDelivery.manual_retry_requested,
                and_(
                    WebhookDelivery.status.in_(WEBHOOK_SCHEDULED),
                    WebhookDelivery.next_attempt_at <= now,
                    WebhookEndpoint.enabled,
                ),
            ),
            or_(WebhookDelivery.leased_until.is_(None), WebhookDelivery.leased_until < now),
        )
        # Manual retries first ("now" means now); a failed delivery has no next_attempt_at.
        .order_by(
            WebhookDelivery.manual_retry_requested.desc(),
            WebhookDelivery.next_attempt_at.asc().nulls_first(),
        )
        .limit(limit)
        .with_for_update(of=WebhookDelivery, skip_locked=True)
    )
    if busy_endpoints:
        stmt = stmt.where(WebhookDelivery.endpoint_id.not_in(list(busy_endpoints)))
    return [(row[0], row[1]) for row in (await session.execute(stmt)).all()]


async def lease(
    session: AsyncSession, delivery_ids: Collection[uuid.UUID], *, lease_seconds: float
) -> Sequence[tuple[WebhookDelivery, WebhookEndpoint]]:
    """Lease rows locked by `lock_due` and count the attempt (a crash mid-send still used it)."""
    if not delivery_ids:
        return []
    now = func.now()
    stmt = (
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(list(delivery_ids)))
        .values(
            attempts=WebhookDelivery.attempts + 1,
            # SET reads the old flag: a manual retry is not an attempt on the schedule.
            scheduled_attempts=WebhookDelivery.scheduled_attempts
            + case((WebhookDelivery.manual_retry_requested, 0), else_=1),
            leased_until=now + timedelta(seconds=lease_seconds),
            last_attempt_at=now,
            updated_at=now,
        )
        .returning(WebhookDelivery)
        .execution_options(synchronize_session=False)
    )
    deliveries = (await session.scalars(stmt)).all()
    endpoint_ids = {d.endpoint_id for d in deliveries}
    endpoints = {
        e.id: e
        for e in (
            await session.scalars(
                select(WebhookEndpoint).where(WebhookEndpoint.id.in_(endpoint_ids))
            )
        ).all()
    }
    return [(d, endpoints[d.endpoint_id]) for d in deliveries]


async def finish_attempt(
    session: AsyncSession,
    delivery: WebhookDelivery,
    *,
    manual: bool,
    status: WebhookDeliveryStatus,
    next_attempt_at: datetime | None,
    response_status: int | None,
    response_body: str | None,
    error: str | None,
) -> bool:
    """Write the outcome if this sender still holds attempt `delivery.attempts`."""
    values: dict[str, Any] = {
        "status": status,
        "leased_until": None,
        "last_response_status": response_status,
        "last_response_body": response_body,
        "last_error": error,
        "updated_at": func.now(),
    }
    if not manual or status is WebhookDeliveryStatus.SUCCEEDED:
        values["next_attempt_at"] = next_attempt_at
    if manual:
        values["manual_retry_requested"] = False
    if status is WebhookDeliveryStatus.SUCCEEDED:
        values["succeeded_at"] = func.coalesce(WebhookDelivery.succeeded_at, func.now())
    result = await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery.id,
            WebhookDelivery.attempts == delivery.attempts,
        )
        .values(**values)
        .returning(WebhookDelivery.id)
        .execution_options(synchronize_session=False)
    )
    return result.scalar_one_or_none() is not None


async def record_attempt(session: AsyncSession, **values: Any) -> None:
    await session.execute(
        insert(WebhookAttempt)
        .values(**values)
        .on_conflict_do_nothing(constraint="uq_webhook_attempts_delivery_no")
    )


async def list_deliveries(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None,
    status: WebhookDeliveryStatus | None,
) -> Sequence[WebhookDelivery]:
    """The merchant's deliveries, newest first, from after the cursor."""
    stmt = select(WebhookDelivery).where(WebhookDelivery.user_id == user_id)
    if status is not None:
        stmt = stmt.where(WebhookDelivery.status == status)
    if before is not None:
        stmt = stmt.where(tuple_(WebhookDelivery.created_at, WebhookDelivery.id) < tuple_(*before))
    stmt = stmt.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()).limit(limit)
    return (await session.scalars(stmt)).all()


async def delivery_of_user(
    session: AsyncSession, user_id: uuid.UUID, delivery_id: uuid.UUID
) -> WebhookDelivery | None:
    return (
        await session.scalars(
            select(WebhookDelivery).where(
                WebhookDelivery.id == delivery_id, WebhookDelivery.user_id == user_id
            )
        )
    ).one_or_none()


async def request_manual_retry(
    session: AsyncSession, user_id: uuid.UUID, delivery_id: uuid.UUID
) -> WebhookDelivery | None:
    return (
        await session.scalars(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id, WebhookDelivery.user_id == user_id)
            .values(manual_retry_requested=True, updated_at=func.now())
            .returning(WebhookDelivery)
            .execution_options(synchronize_session=False)
        )
    ).one_or_none()


async def attempts_of(session: AsyncSession, delivery_id: uuid.UUID) -> Sequence[WebhookAttempt]:
    return (
        await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id == delivery_id)
            .order_by(WebhookAttempt.attempt_no)
        )
    ).all()
