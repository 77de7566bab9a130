"""exchange-rate-service app: create_app() wires the API, the bundled history, the ECB refresh and purge workers, Redis and the outbox relay."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime

import httpx
from fastapi import FastAPI
from redis.asyncio import Redis

from exchange_rate_service.api.admin import router as admin_router
from exchange_rate_service.api.internal import router as internal_router
from exchange_rate_service.api.quotes import router as quotes_router
from exchange_rate_service.api.rates import convert_router, rates_router
from exchange_rate_service.settings import Settings
from exchange_rate_service.store.snapshots import SnapshotReader
from exchange_rate_service.workers.housekeeping import purge_worker
from exchange_rate_service.workers.refresh import RateRefresher, refresh_worker
from paygate_common.app import create_service_app
from paygate_common.serve import run_service
from paygate_common.worker import Worker

DESCRIPTION = """Reference FX rates and locked quotes. Rates are the ECB's euro reference rates
(the history bundled with the service, then the daily feed at `EXCHANGE_RATE_SERVICE_ECB_DAILY_URL`)
plus operator-set rates for currencies the ECB lacks (`PUT /admin/rates/{currency}`); any pair
is a cross rate through EUR. Rates are decimal strings, amounts integer minor units, rounding
half-even. `POST /fx/quotes` locks a converted price (mid rate less
`EXCHANGE_RATE_SERVICE_QUOTE_MARGIN_BPS`) until `expires_at`; another service redeems it once."""

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    async with AsyncExitStack() as stack:
        # Our own client, not the shared one: short timeouts, and no `redis` readiness check —
        # the cache is optional, rates are answered from PostgreSQL while it is down.
        redis = Redis.from_url(
            settings.redis_url,
            decode_responses=False,
            socket_timeout=settings.redis_timeout_seconds,
            socket_connect_timeout=settings.redis_timeout_seconds,
            retry_on_timeout=False,
        )
        stack.push_async_callback(redis.aclose)
        reader = SnapshotReader(
            redis=redis,
            sessionmaker=app.state.sessionmaker,
            ttl_seconds=settings.cache_ttl_seconds,
            service=settings.service_name,
            retry_after_seconds=settings.cache_retry_after_seconds,
        )
        app.state.rates_reader = reader
        http = httpx.AsyncClient(
            timeout=settings.fetch_timeout_seconds,
            follow_redirects=True,
            headers={"User-Agent": "paygate-exchange-rate-service"},
        )
        stack.push_async_callback(http.aclose)
        refresher = RateRefresher(
            settings=settings,
            sessionmaker=app.state.sessionmaker,
            reader=reader,
            http=http,
            clock=app.state.clock,
        )
        app.state.rate_refresher = refresher
        if settings.load_bundled_history:
            # Before serving: years of history with no network, on the very first start.
            await refresher.load_bundled_history()
        yield


def workers(app: FastAPI) -> list[Worker]:
    settings: Settings = app.state.settings
    return [
        refresh_worker(app.state.rate_refresher),
        purge_worker(app.state.sessionmaker, settings.idempotency_purge_interval_seconds),
    ]


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    settings = settings or Settings()
    app = create_service_app(
        settings,
        title="paygate exchange-rate-service",
        description=DESCRIPTION,
        routers=[rates_router, convert_router, quotes_router, admin_router, internal_router],
        lifespan=lifespan,
        eventing=True,
        workers=workers,
        use_redis=False,
        openapi_tags=[
            {"name": "rates", "description": "Reference rates, history and conversion"},
            {"name": "quotes", "description": "Locked FX quotes"},
            {"name": "admin", "description": "Feed status and operator-set rates (admin)"},
            {"name": "internal", "description": "Service-to-service (service token)"},
        ],
    )
    # Tests inject a clock to move past `expires_at` without sleeping.
    app.state.clock = clock or utc_now
    return app


def run() -> None:
    """The `exchange-rate-service` console script: uvicorn as the registry and settings say."""
    run_service("exchange-rate")
