"""Limit reservations and the per-user, currency and period counters they add up in."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from sqlalchemy import func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from transaction_service.store.tables import (
    ledger_config,
    limit_counters,
    limit_reservations,
    transactions,
)

# A reservation in one statement: the row, then the day counter, then the month counter, each
# written only if the one before it was (so the counters are always locked day first, then
# month) and only within its maximum (NULL: no limit). The maxima were computed from the limits
# config of version `:config_version`; if the stored config is another version, nothing is
# written and the caller recomputes them. An upsert's WHERE is evaluated on the newest version
# of a contended counter row, under its lock, so concurrent reservations can never together
# pass a limit. One row always comes back: the stored config version, the reservation (NULLs:
# it existed already, or the version differed) and the new counter totals (NULL: over a limit).
_RESERVE = text(
    """
WITH cfg AS (
    SELECT config_version FROM ledger_config WHERE key = CAST(:config_key AS text)
), ins AS (
    INSERT INTO limit_reservations (reference_id, user_id, currency, amount, day, month, status)
    SELECT CAST(:reference_id AS uuid), CAST(:user_id AS uuid), CAST(:currency AS varchar),
           CAST(:amount AS bigint), CAST(:day AS date), CAST(:month AS date),
           CAST(:status AS text)
    WHERE (SELECT config_version FROM cfg) IS NOT DISTINCT FROM CAST(:config_version AS integer)
    ON CONFLICT (reference_id) DO NOTHING
    RETURNING reference_id, user_id, currency, amount, status, created_at
), day_counter AS (
    INSERT INTO limit_counters AS c (user_id, currency, period, period_start, reserved)
    SELECT ins.user_id, ins.currency, 'day', CAST(:day AS date), ins.amount FROM ins
    WHERE (CAST(:per_transaction AS bigint) IS NULL
           OR ins.amount <= CAST(:per_transaction AS bigint))
      AND (CAST(:daily AS bigint) IS NULL OR ins.amount <= CAST(:daily AS bigint))
    ON CONFLICT (user_id, currency, period, period_start)
    DO UPDATE SET reserved = c.reserved + EXCLUDED.reserved
    WHERE CAST(:daily AS bigint) IS NULL
       OR c.reserved + EXCLUDED.reserved <= CAST(:daily AS bigint)
    RETURNING c.reserved
), month_counter AS (
    INSERT INTO limit_counters AS c (user_id, currency, period, period_start, reserved)
    SELECT CAST(:user_id AS uuid), CAST(:currency AS varchar), 'month', CAST(:month AS date),
           CAST(:amount AS bigint)
    FROM day_counter
    WHERE CAST(:monthly AS bigint) IS NULL OR CAST(:amount AS bigint) <= CAST(:monthly AS bigint)
    ON CONFLICT (user_id, currency, period, period_start)
    DO UPDATE SET reserved = c.reserved + EXCLUDED.reserved
    WHERE CAST(:monthly AS bigint) IS NULL
       OR c.reserved + EXCLUDED.reserved <= CAST(:monthly AS bigint)
    RETURNING c.reserved
)
SELECT
    (SELECT config_version FROM cfg) AS config_version,
    ins.reference_id, ins.user_id, ins.currency, ins.amount, ins.status, ins.created_at,
    (SELECT reserved FROM day_counter) AS day_total,
    (SELECT reserved FROM month_counter) AS month_total
FROM (SELECT 1) AS one LEFT JOIN ins ON true
"""
)


async def reserve_within(
    session: AsyncSession,
    *,
    config_key: str,
    config_version: int | None,
    reference_id: uuid.UUID,
    user_id: uuid.UUID,
    currency: str,
    amount: int,
    day: date,
    month: date,
    status: str,
    per_transaction: int | None,
    daily: int | None,
    monthly: int | None,
) -> Any:
    """The reservation and both counters in one round trip (see `_RESERVE`); its one row."""
    result = await session.execute(
        _RESERVE,
        {
            "config_key": config_key,
            "config_version": config_version,
            "reference_id": reference_id,
            "user_id": user_id,
            "currency": currency,
            "amount": amount,
            "day": day,
            "month": month,
            "status": status,
            "per_transaction": per_transaction,
            "daily": daily,
            "monthly": monthly,
        },
    )
    return result.one()


async def limits_config(session: AsyncSession, key: str) -> tuple[int | None, Any]:
    """The stored limits config's (version, value); (None, None) when admin-service never set it."""
    c = ledger_config.c
    row = (await session.execute(select(c.config_version, c.value).where(c.key == key))).first()
    return (None, None) if row is None else (int(row.config_version), row.value)


async def fetch_reservation(session: AsyncSession, reference_id: uuid.UUID) -> Any:
    result = await session.execute(
        select(limit_reservations).where(limit_reservations.c.reference_id == reference_id)
    )
    return result.first()


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
