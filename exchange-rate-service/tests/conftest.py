"""Fixtures: exchange-rate-service in process (ASGITransport + lifespan) on real PostgreSQL, Redis and Kafka, with the ECB feed stand-in and a test clock."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from exchange_rate_service.main import create_app
from exchange_rate_service.settings import Settings
from paygate_devstack.ecb_feed import DEFAULT_RATES, EcbFeed
from paygate_devstack.events_testing import wait_for
from paygate_devstack.testkit import (
    InProcessService,
    TokenMint,
    app_client,
    migrated_database,
    service_auth,
)


class TestClock:
    """A clock the app reads instead of the wall clock: tests move it, nobody sleeps."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class RatesService(InProcessService[Settings]):
    clock: TestClock
    feed: EcbFeed

    def auth(self, user_id: uuid.UUID, role: str = "customer") -> dict[str, str]:
        return self.mint.auth(user_id, role)

    def service_auth(self) -> dict[str, str]:
        """payment-service calling `/internal/*`."""
        return service_auth(
            self.settings.service_token_secret, caller="payment", audience="exchange-rate"
        )

    async def get(self, path: str, user: uuid.UUID | None = None, **params: Any) -> httpx.Response:
        return await self.http.get(path, params=params, headers=self.auth(user or uuid.uuid4()))

    async def sql(self, query: str, **params: Any) -> list[Any]:
        async with self.app.state.sessionmaker() as session:
            return list((await session.execute(text(query), params)).all())

    async def refresh(self) -> httpx.Response:
        return await self.http.post(
            "/admin/rates/refresh", headers=self.auth(uuid.uuid4(), "admin")
        )

    async def set_operator_rate(self, currency: str, rate: str) -> httpx.Response:
        return await self.http.put(
            f"/admin/rates/{currency}",
            json={"rate_per_eur": rate},
            headers=self.auth(uuid.uuid4(), "admin"),
        )


@asynccontextmanager
async def running_rates_service(
    postgres: Any,
    kafka_broker: Any,
    redis_url: str,
    feed: EcbFeed,
    mint: TokenMint,
    clock: TestClock | None = None,
    feed_up: bool = True,
    **overrides: Any,
) -> AsyncIterator[RatesService]:
    """The app with its startup fetch already failed (feed held down until then).

    Every later fetch is an explicit `svc.refresh()`, so no background refresh can race a
    test's assertions; `feed_up=False` leaves the feed down (an offline start).
    """
    database_url = await migrated_database(
        postgres, "exchange-rate", database_url=overrides.pop("database_url", None)
    )
    settings = Settings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka_broker.bootstrap,
        redis_url=redis_url,
        environment="test",
        log_json=False,
        **{"ecb_daily_url": feed.daily_url, **overrides},
    )
    clock = clock or TestClock()
    app = create_app(settings, clock=clock)
    mint.trust(app)
    feed.set_down(True)
    async with app_client(app, startup_timeout=90) as (_, http):
        svc = RatesService(app, http, mint, clock, feed)

        async def startup_fetch_failed() -> bool:
            rows = await svc.sql(
                "SELECT 1 FROM rate_feeds WHERE name = 'ecb-daily' AND last_error IS NOT NULL"
            )
            return bool(rows)

        await wait_for(startup_fetch_failed, timeout=30)
        feed.set_down(not feed_up)
        yield svc


@pytest.fixture
def feed(ecb_feed: EcbFeed) -> Any:
    """The session's ECB stand-in, back to its defaults (up, latest weekday) after the test."""
    yield ecb_feed
    ecb_feed.set_down(False)
    ecb_feed.state.published = None
    ecb_feed.state.rates = dict(DEFAULT_RATES)


@pytest.fixture
def start_rates_service(
    postgres: Any, kafka_broker: Any, redis_server: Any, feed: EcbFeed, token_mint: TokenMint
) -> Callable[..., Any]:
    """`async with start_rates_service(clock=..., redis_url=..., **settings) as svc:` on a fresh database."""

    def start(*, redis_url: str | None = None, **overrides: Any) -> Any:
        return running_rates_service(
            postgres,
            kafka_broker,
            redis_url or redis_server.url,
            feed,
            token_mint,
            **overrides,
        )

    return start


@pytest.fixture(scope="session")
def make_clock() -> type[TestClock]:
    """Test modules cannot import this file (importlib mode): the clock class travels as a fixture."""
    return TestClock
