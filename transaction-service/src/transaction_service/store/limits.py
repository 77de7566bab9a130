"""Limit reservations and the per-user, currency and period counters they add up in."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from transaction_service.store.tables import limit_counters, limit_reservations, transactions


async def insert_reservation(session: AsyncSession, **values: Any) -> Any:
    """The new reservation row, or None when one exists for the reference (idempotent)."""
    stmt = (
        pg_insert(limit_reservations)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["reference_id"])
        .returning(*limit_reservations.c)
    )
    return (await session.execute(stmt)).first()


async def fetch_reservation(session: AsyncSession, reference_id: uuid.UUID) -> Any:
    result = await session.execute(
        select(limit_reservations).where(limit_reservations.c.reference_id == reference_id)
    )
    return result.first()


async def add_to_counter(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    currency: str,
    period: str,
    period_start: date,
    amount: int,
    maximum: int | None,
) -> int | None:
    """Add `amount` if the counter stays within `maximum`; the new total, or None if it would not.

    The guarded UPDATE holds the counter's row lock until commit, so concurrent reservations
    for one user, currency and period queue up and can never together pass the limit.
    """
    await session.execute(
        pg_insert(limit_counters)
        .values(user_id=user_id, currency=currency, period=period, period_start=period_start)
        .on_conflict_do_nothing()
    )
    c = limit_counters.c
    key = and_(
        c.user_id == user_id,
        c.currency == currency,
        c.period == period,
        c.period_start == period_start,
    )
    condition = key if maximum is None else and_(key, c.reserved + amount <= maximum)
    result = await session.execute(
        limit_counters.update()
        .where(condition)
        .values(reserved=c.reserved + amount)
        .returning(c.reserved)
    )
    total = result.scalar_one_or_none()
    return None if total is None else int(total)


async def counter_value(
    session: AsyncSession, *, user_id: uuid.UUID, currency: str, period: str, period_start: date
) -> int:
    c = limit_counters.c
    result = await session.execute(
        select(c.reserved).where(
            c.user_id == user_id,
            c.currency == currency,
            c.period == period,
            c.period_start == period_start,
        )
    )
    return int(result.scalar_one_or_none() or 0)


async def subtract_from_counters(
    session: AsyncSession, *, user_id: uuid.UUID, currency: str, day: date, month: date, amount: int
) -> None:
    c = limit_counters.c
    for period, start in (("day", day), ("month", month)):
        await session.execute(
            limit_counters.update()
            .where(
                c.user_id == user_id,
                c.currency == currency,
                c.period == period,
                c.period_start == start,
            )
            .values(reserved=func.greatest(c.reserved - amount, 0))
        )


async def orphaned_reservations(
    session: AsyncSession, *, older_than_seconds: float, limit: int
) -> list[uuid.UUID]:
    """Active reservations older than that whose order or payment the ledger never saw."""
    r, t = limit_reservations.c, transactions.c
    seen = select(t.id).where(or_(t.id == r.reference_id, t.order_id == r.reference_id)).exists()
    query = (
        select(r.reference_id)
        .where(
            r.status == "active",
            r.created_at < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, older_than_seconds),
            ~seen,
        )
        .order_by(r.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.execute(query)).scalars())


async def move_reservation(
    session: AsyncSession,
    reference_ids: list[uuid.UUID],
    *,
    to: str,
    allowed_from: set[str],
    cap_amount: int | None = None,
) -> Any:
    """Move the first matching reservation from one of `allowed_from` to `to`; the old row."""
    r = limit_reservations.c
    old = (
        select(r.reference_id, r.amount)
        .where(r.reference_id.in_(reference_ids), r.status.in_(allowed_from))
        .order_by(r.created_at)
        .limit(1)
        .with_for_update()
        .cte("old")
    )
    values: dict[str, Any] = {"status": to, "updated_at": func.now()}
    if cap_amount is not None:
        values["amount"] = func.least(r.amount, cap_amount)
    stmt = (
        limit_reservations.update()
        .where(r.reference_id == old.c.reference_id)
        .values(**values)
        .returning(
            r.reference_id, r.user_id, r.currency, r.day, r.month, old.c.amount.label("old_amount")
        )
    )
    return (await session.execute(stmt)).first()
