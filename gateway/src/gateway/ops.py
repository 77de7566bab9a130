"""The gateway's own endpoints: /health, /ready, /metrics, /openapi.json and an offline /docs."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import fastapi_offline
import httpx
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from gateway.metrics import UPSTREAM_UP
from paygate_common.errors import problem_response

if TYPE_CHECKING:
    from gateway.main import Gateway

STATIC_DIR = Path(fastapi_offline.__file__).parent / "static"
DOCS_STATIC = "/docs/static"


async def _upstream_ready(client: httpx.AsyncClient, url: str) -> str:
    try:
        response = await client.get(f"{url}/ready")
    except httpx.HTTPError as exc:
        return f"down: {type(exc).__name__}"
    return "ok" if response.status_code == 200 else f"not_ready: HTTP {response.status_code}"


async def _resolvable(url: str, seconds: float) -> str:
    """The upstream's host resolves to an address (DNS, /etc/hosts): it can be connected to."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.wait_for(
            asyncio.get_running_loop().getaddrinfo(host, port, type=0), seconds
        )
    except (OSError, TimeoutError) as exc:
        return f"unresolvable: {type(exc).__name__}"
    return "ok" if infos else "unresolvable: no address"


def build_ops_app(gateway: Gateway) -> Starlette:
    settings = gateway.settings

    async def health(_: Request) -> JSONResponse:
        names = gateway.table.services
        client = gateway.http
        urls = gateway.proxy.instance_urls
        results = await asyncio.gather(
            *(_upstream_ready(client, url) for n in names for url in urls[n])
        )
        upstreams: dict[str, dict[str, Any]] = {}
        answers = iter(results)
        for name in names:
            readies = [next(answers) for _ in urls[name]]
            # the service is ready while one instance is; the others are listed (degraded)
            ready = "ok" if "ok" in readies else readies[0]
            UPSTREAM_UP.labels(name).set(1 if ready == "ok" else 0)
            upstreams[name] = {
                "ready": ready,
                "circuit": gateway.breakers[name].snapshot(),
            }
            balancer = gateway.proxy.balancers.get(name)
            if balancer is not None and not balancer.single:
                upstreams[name]["instances"] = [
                    {**seen, "ready": r}
                    for seen, r in zip(balancer.snapshot(), readies, strict=True)
                ]
        limiter = gateway.limiter
        rate_limit = (
            "off"
            if limiter is None
            else ("redis" if limiter.redis_up and await limiter.ping() else "local-fallback")
        )
        degraded = rate_limit == "local-fallback" or any(
            u["ready"] != "ok"
            or u["circuit"]["state"] != "closed"
            or any(i["ready"] != "ok" or i["state"] != "healthy" for i in u.get("instances", ()))
            for u in upstreams.values()
        )
        return JSONResponse(
            {
                "status": "degraded" if degraded else "ok",
                "service": settings.service_name,
                "rate_limit_store": rate_limit,
                "upstreams": upstreams,
            }
        )

    async def ready(_: Request) -> JSONResponse:
        # Ready = what this process needs to route: the rate-limit store and an address for
        # every upstream in the route table. An upstream that is down (but resolvable) does not
        # make the gateway unready: it answers 502/503 for it and the others keep working.
        timeout = settings.ready_timeout_seconds
        names = gateway.table.services
        limiter = gateway.limiter

        async def redis_check() -> str:
            if limiter is None:
                return "off"
            try:
                ok = await asyncio.wait_for(limiter.ping(), timeout)
            except TimeoutError:
                return "down: TimeoutError"
            return "ok" if ok else "down: no PING answer"

        async def jwks_check() -> str:
            # Without keys every protected call would be a 503: not ready until user-service
            # has published them (the launcher starts both at once).
            jwks = gateway.jwks
            if jwks is None:
                return "off"
            if not jwks.kids:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(jwks.refresh(), timeout)
            return "ok" if jwks.kids else "down: no verification keys yet"

        redis, jwks, *resolved = await asyncio.gather(
            redis_check(),
            jwks_check(),
            *(_resolvable(gateway.proxy.instance_urls[n][0], timeout) for n in names),
        )
        checks = {"redis": redis, "jwks": jwks}
        checks.update({f"upstream:{n}": r for n, r in zip(names, resolved, strict=True)})
        failing = [
            name
            for name, result in checks.items()
            if result not in ("ok", "off") and (name != "redis" or settings.ready_requires_redis)
        ]
        return JSONResponse(
            {
                "status": "not_ready" if failing else "ready",
                "service": settings.service_name,
                "checks": checks,
            },
            status_code=503 if failing else 200,
        )

    token = settings.metrics_token.get_secret_value().encode() if settings.metrics_token else None

    async def metrics(request: Request) -> Response:
        # Off the public port unless a token is configured (then only with that token); the
        # operator listener (GATEWAY_METRICS_PORT) serves it without one.
        if token is None:
            return problem_response(404, "not_found", None, "No such route", instance="/metrics")
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token):
            return problem_response(
                401,
                "unauthorized",
                None,
                "A metrics token is required",
                instance="/metrics",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def openapi(_: Request) -> Response:
        return Response(await gateway.specs.document(), media_type="application/json")

    async def docs(_: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="paygate API",
            swagger_js_url=f"{DOCS_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_STATIC}/favicon.png",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_ui_parameters={"persistAuthorization": True},
        )

    async def oauth2_redirect(_: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def not_found(request: Request, _: Exception) -> Response:
        return problem_response(404, "not_found", None, "No such route", instance=request.url.path)

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/ready", ready),
            Route("/metrics", metrics),
            Route("/openapi.json", openapi),
            Route("/docs", docs),
            Route("/docs/oauth2-redirect", oauth2_redirect),
            Mount(DOCS_STATIC, app=StaticFiles(directory=STATIC_DIR), name="docs-static"),
        ],
        exception_handlers={404: not_found},
    )
