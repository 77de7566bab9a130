"""Rate snapshots read through Redis: a hit never touches PostgreSQL; Redis down is a logged miss.

Invalidation is a generation counter: every key carries the generation it was written under and
a rate change increments it after its commit, so no reader can put back a snapshot that was
read before the change under the new generation. Old keys simply age out (`cache_ttl_seconds`).
"""

from __future__ import annotations

import logging
import time
from datetime import date
from decimal import Decimal
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from exchange_rate_service.domain.rates import EurRate, Snapshot
from exchange_rate_service.metrics import CACHE_FALLBACKS, CACHE_LOOKUPS
from exchange_rate_service.store import rates as store
from paygate_common.db import unit_of_work

log = logging.getLogger("exchange_rate_service.cache")

GENERATION_KEY = "fx:generation"
# Redis errors are logged at most this often: a dead Redis must not flood the log.
LOG_EVERY_SECONDS = 30.0

CacheErrors = (RedisError, OSError, TimeoutError)


def _encode(snapshot: Snapshot) -> bytes:
    return orjson.dumps(
        {
            "as_of": snapshot.as_of.isoformat(),
            "ecb_date": snapshot.ecb_date.isoformat() if snapshot.ecb_date else None,
            "rates": [
                {
                    "c": e.currency,
                    "r": str(e.rate_per_eur),
                    "d": e.rate_date.isoformat(),
                    "s": e.source,
                    "at": e.set_at.isoformat() if e.set_at else None,
                    "by": str(e.set_by) if e.set_by else None,
                }
                for e in snapshot.rates.values()
            ],
        }
    )


def _decode(raw: bytes | str) -> Snapshot:
    import uuid
    from datetime import datetime

    data: dict[str, Any] = orjson.loads(raw)
    rates = {
        e["c"]: EurRate(
            currency=e["c"],
            rate_per_eur=Decimal(e["r"]),
            rate_date=date.fromisoformat(e["d"]),
            source=e["s"],
            set_at=datetime.fromisoformat(e["at"]) if e["at"] else None,
            set_by=uuid.UUID(e["by"]) if e["by"] else None,
        )
        for e in data["rates"]
    }
    ecb = data["ecb_date"]
    return Snapshot(
        as_of=date.fromisoformat(data["as_of"]),
        ecb_date=date.fromisoformat(ecb) if ecb else None,
        rates=rates,
    )


class SnapshotReader:
    """`await reader.snapshot(day, latest=...)`: Redis first, PostgreSQL on a miss or an error."""

    def __init__(
        self,
        *,
        redis: Redis | None,
        sessionmaker: async_sessionmaker[AsyncSession],
        ttl_seconds: int,
        service: str,
        retry_after_seconds: float = 5.0,
    ) -> None:
        self.redis = redis
        self.sessionmaker = sessionmaker
        self.ttl_seconds = ttl_seconds
        self.service = service
        self.retry_after_seconds = retry_after_seconds
        self._last_logged = 0.0
        # After a failure Redis is left alone for a moment: a hung Redis must not add its
        # timeout to every request.
        self._bypass_until = 0.0
        # An invalidation Redis missed is sent again on the next answer it gives.
        self._invalidation_pending = False

    def _cache_failed(self, operation: str, exc: BaseException) -> None:
        CACHE_FALLBACKS.labels(self.service, operation).inc()
        now = time.monotonic()
        self._bypass_until = now + self.retry_after_seconds
        if now - self._last_logged >= LOG_EVERY_SECONDS:
            self._last_logged = now
            log.warning(
                "redis %s failed (%s: %s); answering from PostgreSQL",
                operation,
                type(exc).__name__,
                str(exc)[:200],
            )

    async def snapshot(self, day: date, *, latest: bool = False) -> Snapshot:
        """Rates in force on `day`; `latest` caches under one key for "today's" snapshot."""
        name = "latest" if latest else f"day:{day.isoformat()}"
        generation: int | None = None
        if self.redis is not None and time.monotonic() < self._bypass_until:
            CACHE_FALLBACKS.labels(self.service, "bypass").inc()
        elif self.redis is not None:
            try:
                if self._invalidation_pending:
                    await self.redis.incr(GENERATION_KEY)
                    self._invalidation_pending = False
                generation = int(await self.redis.get(GENERATION_KEY) or 0)
                raw = await self.redis.get(f"fx:{generation}:{name}")
            except CacheErrors as exc:
                CACHE_LOOKUPS.labels(self.service, "error").inc()
                self._cache_failed("get", exc)
                generation, raw = None, None
            if raw is not None:
                cached = _decode(raw)
                # "latest" written yesterday is not today's: refill rather than serve it.
                if not latest or cached.as_of == day:
                    CACHE_LOOKUPS.labels(self.service, "hit").inc()
                    return cached
            if generation is not None:
                CACHE_LOOKUPS.labels(self.service, "miss").inc()
        # A read-only unit of work of its own, opened only on a miss (a hit needs no database).
        async with unit_of_work(self.sessionmaker) as session:
            snapshot = await store.load_snapshot(session, day)
        if self.redis is not None and generation is not None:
            try:
                await self.redis.set(
                    f"fx:{generation}:{name}", _encode(snapshot), ex=self.ttl_seconds
                )
            except CacheErrors as exc:
                self._cache_failed("set", exc)
        return snapshot

    async def invalidate(self) -> None:
        """After a committed rate change: every cached snapshot is from an older generation."""
        if self.redis is None:
            return
        try:
            await self.redis.incr(GENERATION_KEY)
        except CacheErrors as exc:
            # Retried on the next lookup; other replicas' keys expire within cache_ttl_seconds.
            self._invalidation_pending = True
            self._cache_failed("invalidate", exc)
