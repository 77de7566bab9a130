"""Queries on `reference_rates` and `rate_feeds`: snapshots, history, feed upserts, operator rates."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import distinct_on, insert
from sqlalchemy.ext.asyncio import AsyncSession

from exchange_rate_service.domain.rates import EurRate, Snapshot
from exchange_rate_service.sources.ecb_xml import PublishedRate
from exchange_rate_service.store.tables import rate_feeds, reference_rates

DAILY_FEED = "ecb-daily"
BUNDLED_HISTORY = "ecb-bundled-history"
# pg_advisory_xact_lock key: replicas starting together load the bundled history once.
_HISTORY_LOCK = 0x5047_4658  # "PGFX"

r = reference_rates


def _eur_rate(row: Any) -> EurRate:
    return EurRate(
        currency=row.currency,
        rate_per_eur=Decimal(row.rate_per_eur),
        rate_date=row.rate_date,
        source=row.source,
        set_at=row.set_at if row.source == "operator" else None,
        set_by=row.set_by,
    )


_COLUMNS = (r.c.currency, r.c.rate_date, r.c.rate_per_eur, r.c.source, r.c.set_at, r.c.set_by)


async def latest_ecb_date(session: AsyncSession, on_or_before: date) -> date | None:
    latest: date | None = (
        await session.execute(
            select(func.max(r.c.rate_date)).where(
                r.c.source == "ecb", r.c.rate_date <= on_or_before
            )
        )
    ).scalar_one_or_none()
    return latest


async def load_snapshot(session: AsyncSession, as_of: date) -> Snapshot:
    """The ECB publication on or before `as_of` plus every operator rate in force then."""
    ecb_date = await latest_ecb_date(session, as_of)
    rows: list[Any] = []
    if ecb_date is not None:
        rows += (
            await session.execute(
                select(*_COLUMNS).where(r.c.source == "ecb", r.c.rate_date == ecb_date)
            )
        ).all()
    rows += (
        await session.execute(
            select(*_COLUMNS)
            .where(r.c.source == "operator", r.c.rate_date <= as_of)
            .order_by(r.c.currency, r.c.rate_date.desc())
            .ext(distinct_on(r.c.currency))
        )
    ).all()
    return Snapshot.build(as_of, ecb_date, (_eur_rate(row) for row in rows))


async def ecb_currencies_since(session: AsyncSession, since: date) -> set[str]:
    """Currencies the ECB published on or after `since`."""
    rows = await session.execute(
        select(r.c.currency).where(r.c.source == "ecb", r.c.rate_date >= since).distinct()
    )
    return set(rows.scalars())


async def ecb_dates_between(session: AsyncSession, start: date, end: date) -> list[date]:
    rows = await session.execute(
        select(r.c.rate_date)
        .where(r.c.source == "ecb", r.c.rate_date.between(start, end))
        .distinct()
        .order_by(r.c.rate_date)
    )
    return list(rows.scalars())


async def currency_rates_between(
    session: AsyncSession, currency: str, start: date, end: date
) -> list[EurRate]:
    """The currency's rows in [start, end] plus the last one before `start` (operator as-of)."""
    before = (
        select(*_COLUMNS)
        .where(r.c.currency == currency, r.c.rate_date < start)
        .order_by(r.c.rate_date.desc())
        .limit(1)
    )
    inside = select(*_COLUMNS).where(r.c.currency == currency, r.c.rate_date.between(start, end))
    rows = [*(await session.execute(before)).all(), *(await session.execute(inside)).all()]
    return sorted((_eur_rate(row) for row in rows), key=lambda e: e.rate_date)


async def upsert_ecb_rates(session: AsyncSession, rates: Sequence[PublishedRate]) -> int:
    """Insert published rates; a changed value for an existing ECB day replaces it. Rows written."""
    if not rates:
        return 0
    stmt = insert(r).values(
        [
            {
                "currency": p.currency,
                "rate_date": p.rate_date,
                "rate_per_eur": p.rate_per_eur,
                "source": "ecb",
            }
            for p in rates
        ]
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[r.c.currency, r.c.rate_date],
        set_={"rate_per_eur": stmt.excluded.rate_per_eur, "set_at": func.now()},
        # Never overwrite an operator's row, and leave identical rows alone.
        where=(r.c.source == "ecb") & (r.c.rate_per_eur != stmt.excluded.rate_per_eur),
    )
    result = await session.execute(stmt)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def bulk_load_ecb_rates(session: AsyncSession, rates: Iterable[PublishedRate]) -> int:
    """COPY a large history into a temporary table, then insert what is missing. Rows added."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    await driver.execute(
        "CREATE TEMPORARY TABLE bundled_rates "
        "(currency text, rate_date date, rate_per_eur numeric) ON COMMIT DROP"
    )
    await driver.copy_records_to_table(
        "bundled_rates",
        records=((p.currency, p.rate_date, p.rate_per_eur) for p in rates),
        columns=["currency", "rate_date", "rate_per_eur"],
    )
    result = await session.execute(
        text(
            "INSERT INTO reference_rates (currency, rate_date, rate_per_eur, source) "
            "SELECT currency, rate_date, rate_per_eur, 'ecb' FROM bundled_rates "
            "ON CONFLICT (currency, rate_date) DO NOTHING"
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def lock_history_load(session: AsyncSession, bundled_latest: date) -> bool:
    """Serialise history loads across replicas; True when the history still needs loading.

    Loaded once, and again only when a newer package ships days the database lacks.
    """
    await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _HISTORY_LOCK})
    row = (
        await session.execute(
            select(rate_feeds.c.last_success_at, rate_feeds.c.latest_rate_date).where(
                rate_feeds.c.name == BUNDLED_HISTORY
            )
        )
    ).one_or_none()
    return (
        row is None
        or row.last_success_at is None
        or row.latest_rate_date is None
        or row.latest_rate_date < bundled_latest
    )


async def set_operator_rate(
    session: AsyncSession,
    *,
    currency: str,
    rate_date: date,
    rate_per_eur: Decimal,
    set_by: uuid.UUID,
    set_at: datetime,
) -> EurRate:
    """The operator's rate for `currency` from `rate_date` on (a second one that day replaces it)."""
    stmt = insert(r).values(
        currency=currency,
        rate_date=rate_date,
        rate_per_eur=rate_per_eur,
        source="operator",
        set_by=set_by,
        set_at=set_at,
    )
    upsert = stmt.on_conflict_do_update(
        index_elements=[r.c.currency, r.c.rate_date],
        set_={"rate_per_eur": rate_per_eur, "set_by": set_by, "set_at": set_at},
        where=r.c.source == "operator",
    ).returning(*_COLUMNS)
    row = (await session.execute(upsert)).one()
    return _eur_rate(row)


async def operator_rate_in_force(
    session: AsyncSession, currency: str, as_of: date
) -> EurRate | None:
    row = (
        await session.execute(
            select(*_COLUMNS)
            .where(r.c.currency == currency, r.c.source == "operator", r.c.rate_date <= as_of)
            .order_by(r.c.rate_date.desc())
            .limit(1)
        )
    ).one_or_none()
    return None if row is None else _eur_rate(row)


# --- feed status ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedStatus:
    name: str
    url: str | None
    last_attempt_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    latest_rate_date: date | None
    rows_loaded: int


async def record_feed_attempt(
    session: AsyncSession,
    *,
    name: str,
    url: str | None,
    at: datetime,
    error: str | None,
    latest_rate_date: date | None = None,
    rows_loaded: int = 0,
) -> None:
    """Remember an attempt; a failure keeps the last success and its date (how old rates are)."""
    values: dict[str, Any] = {"url": url, "last_attempt_at": at, "last_error": error}
    if error is None:
        values |= {"last_success_at": at, "rows_loaded": rows_loaded}
        if latest_rate_date is not None:
            values["latest_rate_date"] = latest_rate_date
    stmt = insert(rate_feeds).values(name=name, **values)
    await session.execute(
        stmt.on_conflict_do_update(index_elements=[rate_feeds.c.name], set_=values)
    )


async def feed_status(session: AsyncSession, name: str = DAILY_FEED) -> FeedStatus | None:
    row = (await session.execute(select(rate_feeds).where(rate_feeds.c.name == name))).one_or_none()
    return None if row is None else FeedStatus(**row._mapping)
