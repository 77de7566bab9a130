"""A currency pair's history: the cross rate on every ECB publication day of a range."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from exchange_rate_service.domain.errors import InvalidDateRange
from exchange_rate_service.domain.rates import EUR, history_series, rate_in_force
from exchange_rate_service.store import rates as store


async def pair_history(
    *,
    session: AsyncSession,
    base: str,
    symbol: str,
    start: date,
    end: date,
    max_days: int,
) -> list[tuple[date, Decimal]]:
    """Oldest first; a day on which either currency had no rate in force is left out."""
    if start > end:
        raise InvalidDateRange("from is after to")
    if (end - start).days > max_days:
        raise InvalidDateRange(f"at most {max_days} days per request")
    days = await store.ecb_dates_between(session, start, end)
    series = {
        code: await store.currency_rates_between(session, code, start, end)
        for code in {base, symbol} - {EUR}
    }
    pairs = {}
    for day in days:
        base_rate = rate_in_force(series, base, day)
        quote_rate = rate_in_force(series, symbol, day)
        if base_rate is not None and quote_rate is not None:
            pairs[day] = (base_rate, quote_rate)
    return history_series(pairs)
