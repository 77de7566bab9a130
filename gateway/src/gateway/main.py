"""The gateway's ASGI app: `/api/*` goes to the raw proxy, everything else to the ops sub-app."""

from __future__ import annotations

import gc
import logging
from typing import Any

import httpx
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.apikeys import ApiKeyAuthenticator
from gateway.breaker import CircuitBreaker
from gateway.metrics import OperatorListener
from gateway.openapi import SpecCache
from gateway.ops import build_ops_app
from gateway.proxy import Proxy
from gateway.ratelimit import RateLimiter
from gateway.routes import ROUTES, Route, RouteTable
from gateway.settings import GatewaySettings
from paygate_common.auth import JWKSCache
from paygate_common.logging import configure_logging
from paygate_common.serve import run_service

log = logging.getLogger("paygate.gateway")


class Gateway:
    """Owns the shared state (upstream pools, breakers, limiter, key cache) and dispatches requests."""

    def __init__(self, settings: GatewaySettings, routes: tuple[Route, ...] = ROUTES) -> None:
        self.settings = settings
        self.table = RouteTable(routes)
        self.specs = SpecCache(
            self.table,
            {name: settings.service_url(name) for name in self.table.services},
            refresh_seconds=settings.openapi_refresh_seconds,
        )
        self.breakers = {
            name: CircuitBreaker(
                name,
                failure_threshold=settings.breaker_failure_threshold,
                reset_seconds=settings.breaker_reset_seconds,
                on_close=self.specs.upstream_recovered,
            )
            for name in self.table.services
        }
        self.limiter: RateLimiter | None = None
        self.jwks: JWKSCache | None = None
        self.api_keys: ApiKeyAuthenticator | None = None
        self.http: httpx.AsyncClient = httpx.AsyncClient(
            timeout=settings.upstream_health_timeout_seconds
        )
        self.proxy: Proxy = self._build_proxy()
        # What `gateway.server.GatewayHttpProtocol` serves `/api/*` with, bypassing ASGI.
        self.fast_proxy: Proxy = self.proxy
        self.ops = build_ops_app(self)
        self.operator: OperatorListener | None = None
        if settings.metrics_port is not None:
            self.operator = OperatorListener(settings.metrics_host, settings.metrics_port)

    def _build_proxy(self) -> Proxy:
        settings = self.settings
        if settings.rate_limit_enabled:
            self.limiter = RateLimiter(settings.redis_url, sync_ms=settings.rate_limit_sync_ms)
        if settings.auth_enabled:
            self.jwks = JWKSCache(
                settings.jwks_url,
                ttl_seconds=settings.jwks_cache_seconds,
                min_refetch_interval=settings.jwks_min_refetch_seconds,
            )
            self.api_keys = ApiKeyAuthenticator(settings, self.jwks)
        return Proxy(
            settings,
            self.table,
            breakers=self.breakers,
            limiter=self.limiter,
            jwks=self.jwks,
            api_keys=self.api_keys,
        )

    async def startup(self) -> None:
        await self.proxy.start()
        if self.jwks is not None:
            await self.jwks.refresh()  # best effort: user-service may start after us
        self.specs.start()
        if self.operator is not None:
            await self.operator.start()
            log.info("metrics on http://%s:%d/metrics", self.operator.host, self.operator.port)
        # Everything loaded so far (FastAPI, pydantic, prometheus, ...) lives as long as the
        # process: move it out of the collector's reach, so the collections that requests'
        # garbage triggers stop rescanning it (~6% of the CPU under load in the profile), and
        # collect the young generation less often (requests create few reference cycles).
        gc.collect()
        gc.freeze()
        gc.set_threshold(7000, 20, 20)
        log.info(
            "gateway started: %d routes, auth %s, rate limits %s",
            len(self.table.routes),
            "on" if self.jwks else "off",
            "on" if self.limiter else "off",
        )

    async def shutdown(self) -> None:
        if self.operator is not None:
            await self.operator.aclose()
        await self.specs.aclose()
        await self.proxy.aclose()
        if self.limiter is not None:
            await self.limiter.aclose()
        if self.api_keys is not None:
            await self.api_keys.aclose()
        if self.jwks is not None:
            await self.jwks.aclose()
        await self.http.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            # the API, and the HTML surfaces (console, dashboard) some service serves at the root
            if scope["path"].startswith("/api/") or self.table.match(scope["path"]) is not None:
                await self.proxy(scope, receive, send)
            elif scope.get("scheme") == "https" and self.proxy.hsts:
                await self.ops(scope, receive, self._with_hsts(send))
            else:
                await self.ops(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        else:  # websockets are not routed
            await send({"type": "websocket.close", "code": 1008})

    def _with_hsts(self, send: Send) -> Send:
        header = (b"strict-transport-security", self.proxy.hsts or b"")

        async def send_with_hsts(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        return send_with_hsts

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("gateway failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(settings: GatewaySettings | None = None) -> ASGIApp:
    """The ASGI app (`uvicorn gateway.main:create_app --factory`)."""
    settings = settings or GatewaySettings()
    configure_logging(settings.service_name, settings.log_level, json=settings.log_json)
    # httpx logs every JWKS / OpenAPI / health fetch at INFO; those are routine here.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # No access log. uvicorn decides per connection whether to call its access logger from
    # `hasHandlers()`, and with the shared root handler it would format the client address and
    # path on every response only for the WARNING level to drop the record.
    access = logging.getLogger("uvicorn.access")
    access.handlers[:] = []
    access.propagate = False
    gateway = Gateway(settings)
    app: Any = gateway
    if settings.cors_allow_origins:
        # Only wrapped when configured: CORS is off by default and costs nothing then.
        app = CORSMiddleware(
            gateway,
            allow_origins=settings.cors_allow_origins,
            allow_credentials=settings.cors_allow_credentials,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=[
                "X-Request-ID",
                "Retry-After",
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
            ],
            max_age=settings.cors_max_age_seconds,
        )
        app.gateway = gateway
    asgi: ASGIApp = app
    return asgi


def run() -> None:
    """The `gateway` console script: uvicorn as the registry and settings say."""
    run_service("gateway")
