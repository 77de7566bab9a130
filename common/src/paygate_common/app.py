"""One app factory: problem+json errors, request ids, metrics, health, readiness and offline docs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

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

log = logging.getLogger("paygate.app")

ReadinessCheck = Callable[[], Awaitable[None]]
ServiceLifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

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
) -> FastAPI:
    """Build a service: the shared lifespan opens the engine and Redis, then the service's own."""
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
        responses={503: {"description": "A dependency is down: `checks` says which"}},
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
