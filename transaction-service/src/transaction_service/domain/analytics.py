"""Analytics for operators: attempts and money per period, provider and currency, merged."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from paygate_common.analytics import (
    ZERO_FIGURES,
    AnalyticsItem,
    AnalyticsPeriod,
    AnalyticsRead,
    success_rate,
)
from transaction_service.domain.errors import AnalyticsWindowInvalid
from transaction_service.store import analytics as store

# What an operator sees without asking for a window: a month of days, a year of months.
DEFAULT_WINDOW_DAYS = {"day": 30, "month": 365}
MAX_WINDOW_DAYS = 3 * 366


def window(
    period: AnalyticsPeriod, date_from: date | None, date_to: date | None, *, today: date
) -> tuple[date, date]:
    """The first and last day included; `from` after `to` or a window over three years is refused."""
    last = date_to or today
    if last == date.max:  # the window ends the day after `to`, which must exist
        raise AnalyticsWindowInvalid("`to` is out of range")
    try:
        first = date_from or last - timedelta(days=DEFAULT_WINDOW_DAYS[period] - 1)
    except OverflowError:
        first = date.min
    if period == "month":
        first = first.replace(day=1)
    if first > last:
        raise AnalyticsWindowInvalid("`from` is after `to`")
    if (last - first).days > MAX_WINDOW_DAYS:
        raise AnalyticsWindowInvalid(f"A window is at most {MAX_WINDOW_DAYS} days")
    return first, last


def merge(attempts: list[Any], money: list[Any]) -> list[AnalyticsItem]:
    """One item per (period, provider, currency) that had an attempt or a posting."""
    merged: dict[tuple[date, str, str], dict[str, Any]] = {}
    for row in [*attempts, *money]:
        values = dict(row._mapping)
        key = (values.pop("period_start"), values.pop("provider"), values.pop("currency"))
        merged.setdefault(key, dict(ZERO_FIGURES)).update({k: int(v) for k, v in values.items()})
    return [
        AnalyticsItem(
            period_start=start,
            provider=provider,
            currency=currency,
            success_rate=success_rate(v["succeeded"], v["failed"]),
            **v,
        )
        for (start, provider, currency), v in sorted(merged.items())
    ]


async def analytics(
    *,
    session: AsyncSession,
    period: AnalyticsPeriod,
    date_from: date | None,
    date_to: date | None,
    currency: str | None,
    today: date,
) -> AnalyticsRead:
    first, last = window(period, date_from, date_to, today=today)
    query: dict[str, Any] = {
        "period": period,
        "date_from": first,
        "date_to": last,
        "currency": currency,
    }
    attempts = await store.attempts(session, **query)
    money = await store.money(session, **query)
    return AnalyticsRead(period=period, date_from=first, date_to=last, items=merge(attempts, money))
