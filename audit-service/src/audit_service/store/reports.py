"""Aggregates of the trail for the operator console: actions per day, failed sign-ins, refunds."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from audit_service.store.tables import audit_records

SIGNIN_FAILED = "auth.signin_failed"
REFUND_ACTIONS = ("payment.refund_requested", "order.refund_requested")

c = audit_records.c


def _between(query: Any, since: datetime, until: datetime) -> Any:
    return query.where(c.occurred_at >= since, c.occurred_at < until)


async def actions_per_day(
    session: AsyncSession, since: datetime, until: datetime
) -> list[dict[str, Any]]:
    day = func.date_trunc("day", func.timezone("UTC", c.occurred_at)).label("day")
    query = _between(select(day, c.action, func.count().label("count")), since, until)
    rows = (await session.execute(query.group_by(day, c.action).order_by(day, c.action))).all()
    return [{"day": r.day.date(), "action": r.action, "count": r.count} for r in rows]


async def top_counts(
    session: AsyncSession,
    column: Any,
    actions: tuple[str, ...],
    since: datetime,
    until: datetime,
    *,
    limit: int,
) -> list[dict[str, Any]]:
    """How often each value of `column` appears among records with one of `actions`."""
    key = column.label("key")
    query = _between(
        select(key, func.count().label("count")).where(c.action.in_(actions)), since, until
    )
    query = query.group_by(key).order_by(func.count().desc(), key).limit(limit)
    return [{"key": r.key, "count": r.count} for r in (await session.execute(query)).all()]


async def summary(
    session: AsyncSession, since: datetime, until: datetime, *, limit: int
) -> dict[str, Any]:
    return {
        "actions_per_day": await actions_per_day(session, since, until),
        # A failed sign-in names the account tried (entity) even when nobody is signed in.
        "failed_signins_per_account": await top_counts(
            session,
            func.coalesce(c.entity_id, c.actor_id),
            (SIGNIN_FAILED,),
            since,
            until,
            limit=limit,
        ),
        "failed_signins_per_ip": await top_counts(
            session, c.source_ip, (SIGNIN_FAILED,), since, until, limit=limit
        ),
        "refunds_per_actor": await top_counts(
            session, c.actor_id, REFUND_ACTIONS, since, until, limit=limit
        ),
    }
