"""One app factory: problem+json errors, request ids, metrics, health, readiness and offline docs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol

from fastapi import APIRouter, FastAPI
from fastapi_offline import FastAPIOffline
from starlette.requests import Request
from starlette.responses import JSONResponse

from paygate_common.db import create_engine, create_sessionmaker, ping
from paygate_common.errors import document_problems, install_error_handlers
from paygate_common.logging import RequestIdMiddleware, configure_logging
from paygate_common.metrics import DEPENDENCY_UP, MetricsMiddleware, metrics_endpoint
from paygate_common.request_guard import RequestGuardMiddleware
from paygate_common.settings import ServiceSettings

if TYPE_CHECKING:
    from paygate_common.eventing import ConsumerSpec

log = logging.getLogger("paygate.app")

ReadinessCheck = Callable[[], Awaitable[None]]
ServiceLifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


class BackgroundLoop(Protocol):
    """A worker the kit runs for the app's lifetime: `run()` until `stop()` is awaited."""

    name: str

    async def run(self) -> None: ...

    async def stop(self) -> None: ...


ConsumersFactory = Callable[[FastAPI], Sequence["ConsumerSpec"]]
WorkersFactory = Callable[[FastAPI], Sequence[BackgroundLoop]]

READY_TIMEOUT_SECONDS = 2.0


def add_readiness_check(app: FastAPI, name: str, check: ReadinessCheck) -> None:
    """Register a dependency that `/ready` must reach (database, kafka, redis, ...)."""
    app.state.readiness_checks[name] = check


async def run_readiness_checks(app: FastAPI) -> dict[str, str]:
    service = app.state.settings.service_name

    async def one(name: str, check: ReadinessCheck) -> tuple[str, str]:
        try:
            await asyncio.wait_for(check(), READY_TIMEOUT_SECONDS)
        except Exception as exc:  # any failure means "not ready"; the reason goes to the caller
            DEPENDENCY_UP.labels(service, name).set(0)
            return name, f"down: {type(exc).__name__}"
        DEPENDENCY_UP.labels(service, name).set(1)
        return name, "ok"

    results = await asyncio.gather(*(one(n, c) for n, c in app.state.readiness_checks.items()))
    return dict(results)


@asynccontextmanager
async def _run_workers(
    app: FastAPI, loops: Sequence[BackgroundLoop], stop_timeout: float
) -> AsyncIterator[None]:
    from paygate_common.eventing import supervise

    stopping = asyncio.Event()
    tasks = [
        asyncio.create_task(supervise(loop.name, loop.run, stopping), name=loop.name)
        for loop in loops
    ]
    app.state.workers = list(loops)
    try:
        yield
    finally:
        stopping.set()
        for loop in loops:
            await loop.stop()
        if tasks:
            _, still_running = await asyncio.wait(tasks, timeout=stop_timeout)
            for task in still_running:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _document_problems(app: FastAPI) -> None:
    """Every route's error statuses in the document, as problem+json (built once, then cached)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str = "",
    version: str = "0.1.0",
    routers: Sequence[APIRouter] = (),
    lifespan: ServiceLifespan | None = None,
    use_database: bool = True,
    use_redis: bool = True,
    openapi_tags: list[dict[str, Any]] | None = None,
    eventing: bool = False,
    relay: bool = True,
    consumers: ConsumersFactory | None = None,
    workers: WorkersFactory | None = None,
    stop_timeout: float = 10.0,
) -> FastAPI:
    """Build a service; its lifespan is owned here, in one order for every service.

    Start: engine and Redis, then the service's own `lifespan` (state the rest needs), then
    Kafka (`eventing=True` or any `consumers`: the producer, the outbox relay unless
    `relay=False`, each consumer `consumers(app)` returns), then each worker `workers(app)`
    returns, supervised (restarted with backoff if it crashes). Stop: the reverse.
    """
    configure_logging(settings.service_name, settings.log_level, json=settings.log_json)

    @asynccontextmanager
    async def shared_lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if use_database:
                engine = create_engine(settings)
                stack.push_async_callback(engine.dispose)
                app.state.engine = engine
                app.state.sessionmaker = create_sessionmaker(engine)
                add_readiness_check(app, "database", lambda: ping(engine))
            if use_redis:
                from redis.asyncio import Redis

                redis = Redis.from_url(settings.redis_url, decode_responses=False)
                stack.push_async_callback(redis.aclose)
                app.state.redis = redis

                async def redis_ping() -> None:
                    await redis.ping()

                add_readiness_check(app, "redis", redis_ping)
            if lifespan is not None:
                await stack.enter_async_context(lifespan(app))
            if eventing or consumers is not None:
                from paygate_common.eventing import run_eventing

                specs = list(consumers(app)) if consumers is not None else []
                await stack.enter_async_context(run_eventing(app, relay=relay, consumers=specs))
            if workers is not None:
                await stack.enter_async_context(_run_workers(app, workers(app), stop_timeout))
            log.info("%s started", settings.service_name)
            yield
        log.info("%s stopped", settings.service_name)

    app = FastAPIOffline(
        title=title,
        description=description,
        version=version,
        lifespan=shared_lifespan,
        openapi_tags=openapi_tags,
        swagger_ui_parameters={"persistAuthorization": True},
    )
    app.state.settings = settings
    app.state.readiness_checks = {}
    install_error_handlers(app)

    @app.get("/health", tags=["ops"], summary="Liveness: the process answers")
    async def health() -> dict[str, str]:
        return {"status": "ok", "service": settings.service_name}

    @app.get(
        "/ready",
        tags=["ops"],
        summary="Readiness: database, Kafka and Redis reachable",
        # not a problem: the same readiness body as a 200, naming the check that failed
        responses={
            503: {
                "description": "A dependency is down: `checks` says which",
                "content": {"application/json": {}},
            }
        },
    )
    async def ready(request: Request) -> JSONResponse:
        checks = await run_readiness_checks(request.app)
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {
                "status": "ready" if ok else "not_ready",
                "service": settings.service_name,
                "checks": checks,
            },
            status_code=200 if ok else 503,
        )

    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    for router in routers:
        app.include_router(router)
    _document_problems(app)
    # Innermost of the three: a refused request is still counted and carries its request id.
    app.add_middleware(RequestGuardMiddleware)
    app.add_middleware(MetricsMiddleware, service=settings.service_name)
    app.add_middleware(RequestIdMiddleware)
    return app
