"""The Redis read-through: hits skip PostgreSQL, a refresh invalidates, Redis down is served from PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis as RedisClient

from paygate_devstack.components import Redis
from paygate_devstack.events_testing import wait_for
from paygate_devstack.process import free_port


def latest_weekday(day: date) -> date:
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


def fallbacks(operation: str) -> float:
    labels = {"service": "exchange-rate-service", "operation": operation}
    return REGISTRY.get_sample_value("paygate_fx_cache_fallbacks_total", labels) or 0.0


def lookups(outcome: str) -> float:
    labels = {"service": "exchange-rate-service", "outcome": outcome}
    return REGISTRY.get_sample_value("paygate_fx_cache_lookups_total", labels) or 0.0


@pytest.fixture
def own_redis(tmp_path: Path) -> Any:
    """A Redis of this test's own, so stopping it disturbs nobody else."""
    server = Redis(tmp_path / "redis", free_port(), log_path=tmp_path / "redis.log")
    server.start()
    yield server
    server.stop()


async def test_latest_is_cached_and_a_refresh_invalidates_it(
    start_rates_service: Any, feed: Any, own_redis: Any
) -> None:
    today = latest_weekday(date.today())
    feed.publish(today, {"USD": "1.1000"})
    async with start_rates_service(redis_url=own_redis.url) as svc:
        assert (await svc.refresh()).status_code == 200
        redis = RedisClient.from_url(own_redis.url)
        try:
            generation = int(await redis.get("fx:generation") or 0)
            assert (await svc.get("/rates/latest", symbols="usd")).json()["rates"] == {"usd": "1.1"}
            assert await redis.exists(f"fx:{generation}:latest")
            hits = lookups("hit")
            assert (await svc.get("/rates/latest", symbols="usd")).status_code == 200
            assert lookups("hit") == hits + 1

            feed.publish(today, {"USD": "1.2000"})  # the ECB corrects the day's rate
            assert (await svc.refresh()).status_code == 200
            assert int(await redis.get("fx:generation") or 0) == generation + 1
            assert (await svc.get("/rates/latest", symbols="usd")).json()["rates"] == {"usd": "1.2"}
            # Per-day snapshots are cached too.
            assert (await svc.get("/rates/2010-06-15", symbols="usd")).status_code == 200
            assert await redis.exists(f"fx:{generation + 1}:day:2010-06-15")
        finally:
            await redis.aclose()


async def test_rates_are_served_while_redis_is_down_and_cached_again_after(
    start_rates_service: Any, feed: Any, own_redis: Any
) -> None:
    today = latest_weekday(date.today())
    feed.publish(today, {"USD": "1.0800", "GBP": "0.8500"})
    retry = 10.0  # long enough that a busy machine is still inside it for the next request
    async with start_rates_service(redis_url=own_redis.url, cache_retry_after_seconds=retry) as svc:
        assert (await svc.refresh()).status_code == 200
        assert (await svc.get("/rates/latest", base="usd")).status_code == 200

        own_redis.stop()
        before = fallbacks("get")
        r = await svc.get("/rates/latest", base="usd", symbols="gbp")
        assert r.status_code == 200, r.text
        assert r.json()["rates"] == {"gbp": "0.787037037"}  # 0.85 / 1.08, from PostgreSQL
        assert fallbacks("get") > before
        errors, bypassed = fallbacks("get"), fallbacks("bypass")
        r = await svc.get("/convert", **{"from": "usd", "to": "gbp", "amount": 10_000})
        assert r.status_code == 200 and r.json()["converted_amount"] == 7870
        # Right after an error Redis is not even tried: no timeout added to this request.
        assert fallbacks("bypass") == bypassed + 1 and fallbacks("get") == errors
        assert (await svc.http.get("/ready")).status_code == 200  # the cache is optional

        # A rate change while Redis is down must not leave old snapshots behind later.
        feed.publish(today, {"USD": "1.0000", "GBP": "0.8500"})
        assert (await svc.refresh()).status_code == 200
        assert (await svc.get("/rates/latest", base="usd", symbols="gbp")).json()["rates"] == {
            "gbp": "0.85"
        }

        own_redis.start()
        redis = RedisClient.from_url(own_redis.url)
        try:

            async def refilled() -> bool:
                r = await svc.get("/rates/latest", base="usd", symbols="gbp")
                assert r.json()["rates"] == {"gbp": "0.85"}
                return bool(await redis.keys("fx:*:latest"))

            await wait_for(refilled, timeout=retry + 30, interval=0.5)
            hits = lookups("hit")
            r = await svc.get("/rates/latest", base="usd", symbols="gbp")
            assert r.json()["rates"] == {"gbp": "0.85"} and lookups("hit") == hits + 1
        finally:
            await redis.aclose()
