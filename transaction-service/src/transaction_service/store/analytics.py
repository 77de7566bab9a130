"""Analytics queries: payment attempts per period from `transactions`, money from the journal."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import Date, cast, func, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from transaction_service.store.tables import journal_entries, transactions

# Statuses a payment can only reach once money was captured.
CAPTURED_STATUSES = ("succeeded", "partially_refunded", "refunded")


def _bucket(column: Any, period: str) -> Any:
    unit: Any = literal_column("'day'" if period == "day" else "'month'")
    return cast(func.date_trunc(unit, func.timezone("UTC", column)), Date)


def _utc_window(column: Any, date_from: date, date_to: date) -> list[Any]:
    local = func.timezone("UTC", column)
    return [local >= date_from, local < date_to + timedelta(days=1)]


async def attempts(
    session: AsyncSession, *, period: str, date_from: date, date_to: date, currency: str | None
) -> list[Any]:
    """Per period, provider and currency: payments created, how many captured, how many failed."""
    t = transactions.c
    bucket = _bucket(t.created_at, period)
    query = (
        select(
            bucket.label("period_start"),
            t.provider,
            t.currency,
            func.count().label("count"),
            func.count()
            .filter(or_(t.amount_captured > 0, t.status.in_(CAPTURED_STATUSES)))
            .label("succeeded"),
            func.count().filter(t.status == "failed").label("failed"),
        )
        .where(*_utc_window(t.created_at, date_from, date_to))
        .group_by(bucket, t.provider, t.currency)
    )
    if currency:
        query = query.where(t.currency == currency)
    return list((await session.execute(query)).all())


async def money(
    session: AsyncSession, *, period: str, date_from: date, date_to: date, currency: str | None
) -> list[Any]:
    """Per period, provider and currency: captured, net fees and refunded, as posted."""
    e, t = journal_entries.c, transactions.c
    bucket = _bucket(e.posted_at, period)
    query = (
        select(
            bucket.label("period_start"),
            t.provider,
            e.currency,
            func.coalesce(func.sum(e.captured), 0).label("volume"),
            func.coalesce(func.sum(e.fees), 0).label("fees"),
            func.coalesce(func.sum(e.refunded), 0).label("refunds"),
            func.count(func.distinct(e.payment_id)).filter(e.refunded > 0).label("refund_count"),
        )
        .select_from(journal_entries.join(transactions, t.id == e.payment_id))
        .where(e.kind == "payment", *_utc_window(e.posted_at, date_from, date_to))
        .group_by(bucket, t.provider, e.currency)
    )
    if currency:
        query = query.where(e.currency == currency)
    return list((await session.execute(query)).all())
