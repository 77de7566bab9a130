"""Reference-rate refresh: the bundled history once into an empty database, then the ECB feed on a schedule.

A failed fetch changes nothing but the feed's status row: the last good rates keep being served
(flagged `stale` once older than `stale_after_seconds`), `/ready` stays up, a warning says how
old the rates are and `paygate_fx_feed_fetches_total{outcome="failed"}` counts it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from exchange_rate_service.metrics import FEED_FETCHES, RATES_AGE
from exchange_rate_service.settings import Settings
from exchange_rate_service.sources.bundled_history import bundled_latest_date, read_history
from exchange_rate_service.sources.ecb_xml import FeedError, fetch_eurofxref
from exchange_rate_service.store import rates as store
from exchange_rate_service.store.snapshots import SnapshotReader
from paygate_common.db import unit_of_work
from paygate_common.worker import Worker

log = logging.getLogger("exchange_rate_service.refresh")

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class RefreshResult:
    ok: bool
    latest_rate_date: date | None
    rows_written: int
    error: str | None = None


def _age_seconds(latest: date | None, now: datetime) -> float | None:
    if latest is None:
        return None
    return (now - datetime.combine(latest, time(0), UTC)).total_seconds()


@dataclass
class RateRefresher:
    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    reader: SnapshotReader
    http: httpx.AsyncClient
    clock: Clock
    latest_held: date | None = None

    @property
    def service(self) -> str:
        return self.settings.service_name

    async def load_bundled_history(self) -> int:
        """Load the packaged ECB history once (replicas starting together wait for each other)."""
        bundled_latest = await asyncio.to_thread(bundled_latest_date)
        async with unit_of_work(self.sessionmaker) as session:
            if not await store.lock_history_load(session, bundled_latest):
                await self._publish_age()
                return 0
            # Reading the 640 kB zip is CPU work: off the event loop.
            rates = await asyncio.to_thread(lambda: list(read_history()))
            added = await store.bulk_load_ecb_rates(session, rates)
            latest = max((r.rate_date for r in rates), default=None)
            await store.record_feed_attempt(
                session,
                name=store.BUNDLED_HISTORY,
                url=None,
                at=self.clock(),
                error=None,
                latest_rate_date=latest,
                rows_loaded=added,
            )
        await self.reader.invalidate()
        log.info(
            "bundled ECB history loaded: %d rates up to %s", added, latest and latest.isoformat()
        )
        await self._publish_age()
        return added

    async def refresh_once(self) -> RefreshResult:
        """Fetch the feed and store what it publishes; on failure keep everything as it was."""
        url = self.settings.ecb_daily_url
        now = self.clock()
        try:
            published = await fetch_eurofxref(self.http, url)
        except FeedError as exc:
            error = str(exc)
            async with unit_of_work(self.sessionmaker) as session:
                await store.record_feed_attempt(
                    session, name=store.DAILY_FEED, url=url, at=now, error=error
                )
                held = await store.latest_ecb_date(session, now.date())
            FEED_FETCHES.labels(self.service, store.DAILY_FEED, "failed").inc()
            age = _age_seconds(held, now)
            log.warning(
                "ECB feed fetch failed (%s); still serving the rates of %s (%s hours old)",
                error,
                held.isoformat() if held else "nowhere: no rates held",
                f"{age / 3600:.1f}" if age is not None else "?",
            )
            await self._publish_age()
            return RefreshResult(ok=False, latest_rate_date=held, rows_written=0, error=error)
        latest = max((p.rate_date for p in published), default=None)
        async with unit_of_work(self.sessionmaker) as session:
            written = await store.upsert_ecb_rates(session, published)
            await store.record_feed_attempt(
                session,
                name=store.DAILY_FEED,
                url=url,
                at=now,
                error=None,
                latest_rate_date=latest,
                rows_loaded=written,
            )
        if written:
            await self.reader.invalidate()
        FEED_FETCHES.labels(self.service, store.DAILY_FEED, "succeeded").inc()
        log.info(
            "ECB feed: %d rates up to %s (%d new or changed)",
            len(published),
            latest and latest.isoformat(),
            written,
        )
        await self._publish_age()
        return RefreshResult(ok=True, latest_rate_date=latest, rows_written=written)

    async def _publish_age(self) -> None:
        """Remember the newest ECB day held; the gauge computes its age at every scrape."""
        async with unit_of_work(self.sessionmaker) as session:
            self.latest_held = await store.latest_ecb_date(session, self.clock().date())
        RATES_AGE.labels(self.service).set_function(self._age_now)

    def _age_now(self) -> float:
        return _age_seconds(self.latest_held, self.clock()) or 0.0


def refresh_worker(refresher: RateRefresher) -> Worker:
    """Refresh at once, then every `refresh_interval_seconds`; `refresh_retry_seconds` after a
    failed fetch, so an outage of the feed is retried sooner than the daily schedule."""
    settings = refresher.settings

    async def refresh_pass() -> int:
        result = await refresher.refresh_once()
        worker.interval = (
            settings.refresh_interval_seconds if result.ok else settings.refresh_retry_seconds
        )
        return 0

    worker = Worker("ecb refresh", refresh_pass, interval=settings.refresh_interval_seconds)
    return worker
