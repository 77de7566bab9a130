"""Gateway test helpers and fixtures: real upstream apps on uvicorn, a JWKS, raw HTTP requests."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from gateway.main import create_app
from gateway.settings import GatewaySettings
from paygate_common.auth import SigningKey, issue_access_token, jwks_document
from paygate_common.internal.users import API_KEY_RESOLVE_PATH, ApiKeyResolved, ApiKeyResolveRequest
from paygate_common.services import SERVICES

ISSUER = "paygate"
AUDIENCE = "paygate-api"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class UpstreamState:
    """What the test upstreams saw, and knobs to make them misbehave."""

    hits: Counter[str] = field(default_factory=Counter)
    failing: bool = False
    jwks: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    last: dict[str, Any] = field(default_factory=dict)
    # API keys the stand-in user-service resolves: key -> {user_id, role, scopes, revoked}
    api_keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    signer: SigningKey | None = None
    resolve_headers: list[dict[str, str]] = field(default_factory=list)


class UserItem(BaseModel):
    """Deliberately the same component name as order-service's, with other fields."""

    email: str


class OrderItem(BaseModel):
    amount: int
    currency: str


def upstream_app(service: str, state: UpstreamState) -> FastAPI:
    app = FastAPI(title=f"{service}-service")

    async def echo(request: Request) -> JSONResponse:
        body = await request.body()
        seen = {
            "service": service,
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "headers": dict(request.headers),
            "header_list": [k.decode() for k, _ in request.scope["headers"]],
            "body_len": len(body),
            "body": body[:200].decode("latin-1"),
        }
        state.hits[f"{service} {request.url.path}"] += 1
        state.last = seen
        return JSONResponse(seen, headers={"X-Upstream": service, "Keep-Alive": "timeout=5"})

    # Paths that look like the real services' (for the merged OpenAPI document).
    if service == "user":

        @app.post("/auth/signup")
        async def signup(request: Request) -> JSONResponse:
            return await echo(request)

        @app.post("/auth/signin")
        async def signin(request: Request) -> JSONResponse:
            return await echo(request)

        @app.get("/users/me", response_model=UserItem)
        async def me(request: Request) -> JSONResponse:
            return await echo(request)

        @app.get("/.well-known/jwks.json")
        async def jwks() -> dict[str, Any]:
            state.hits["jwks"] += 1
            return state.jwks

        @app.post(API_KEY_RESOLVE_PATH, response_model=ApiKeyResolved)
        async def resolve_api_key(request: Request) -> JSONResponse:
            """What user-service answers (see user_service.api.internal): a 60 s owner token,
            built and read with user-service's own models so this stand-in cannot drift."""
            state.hits["resolve"] += 1
            state.resolve_headers.append(dict(request.headers))
            key = ApiKeyResolveRequest.model_validate_json(await request.body()).key
            entry = state.api_keys.get(key)
            if entry is None or entry.get("revoked") or state.signer is None:
                return JSONResponse(
                    {"code": "api_key_invalid"},
                    status_code=401,
                    media_type="application/problem+json",
                )
            claims: dict[str, Any] = {"api_key_id": entry["id"]}
            if entry.get("scopes") is not None:
                claims["scope"] = " ".join(entry["scopes"])
            token, ttl = issue_access_token(
                state.signer,
                user_id=entry["user_id"],
                role=entry.get("role", "merchant"),
                email="merchant@example.com",
                issuer=ISSUER,
                audience=AUDIENCE,
                ttl_seconds=entry.get("ttl", 60),
                extra_claims=claims,
            )
            answer = ApiKeyResolved(
                access_token=token,
                expires_in=ttl,
                api_key_id=entry["id"],
                user_id=entry["user_id"],
                role=entry.get("role", "merchant"),
                scopes=entry.get("scopes"),
            )
            return JSONResponse(answer.model_dump(mode="json"))

    if service == "order":

        @app.get("/orders/slow")
        async def slow(request: Request) -> JSONResponse:
            await asyncio.sleep(float(request.query_params.get("s", "2")))
            return await echo(request)

        @app.get("/orders/flaky")
        async def flaky(request: Request) -> Response:
            state.hits["flaky"] += 1
            if state.failing:
                return JSONResponse({"error": "boom"}, status_code=500)
            return await echo(request)

        @app.get("/orders/{order_id}", response_model=OrderItem)
        async def get_order(order_id: str, request: Request) -> JSONResponse:
            return await echo(request)

        @app.post("/orders")
        async def create_order(request: Request) -> JSONResponse:
            return await echo(request)

    if service == "payment":

        @app.post("/payments")
        async def create_payment(request: Request) -> JSONResponse:
            return await echo(request)

        @app.post("/webhooks/stripe")
        async def stripe_webhook(request: Request) -> JSONResponse:
            return await echo(request)

    if service == "notification":

        @app.get("/notifications")
        async def notifications(request: Request) -> JSONResponse:
            return await echo(request)

        @app.get("/admin/notifications/dlq")
        async def dlq(request: Request) -> JSONResponse:
            return await echo(request)

    @app.get(f"/internal/{service}/secret")
    async def internal(request: Request) -> JSONResponse:
        state.hits["INTERNAL"] += 1
        return await echo(request)

    app.add_api_route(
        "/{rest:path}",
        echo,
        methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
        include_in_schema=False,
    )
    return app


@asynccontextmanager
async def serve(
    app: Any, port: int | None = None, **options: Any
) -> AsyncIterator[tuple[str, uvicorn.Server]]:
    """Run an ASGI app under uvicorn in this event loop; yields its base URL."""
    port = port or free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="auto",
        # as in production: the gateway decides itself whether X-Forwarded-For is trusted
        proxy_headers=False,
        **options,
    )
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    deadline = time.monotonic() + 10
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server exited during startup")
        if time.monotonic() > deadline:
            raise TimeoutError("server did not start")
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        await task


@dataclass
class Upstreams:
    state: UpstreamState
    urls: dict[str, str]
    signing_key: SigningKey

    def token(self, *, role: str = "customer", ttl: int = 600, now: int | None = None) -> str:
        token, _ = issue_access_token(
            self.signing_key,
            user_id=uuid.uuid4(),
            role=role,  # type: ignore[arg-type]
            email="someone@example.com",
            issuer=ISSUER,
            audience=AUDIENCE,
            ttl_seconds=ttl,
            now=now,
        )
        return token

    def auth(self, **kwargs: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(**kwargs)}"}


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return SigningKey.generate()


@pytest_asyncio.fixture(scope="session")
async def upstreams(signing_key: SigningKey) -> AsyncIterator[Upstreams]:
    """A stand-in upstream for every service the registry gives public routes."""
    from contextlib import AsyncExitStack

    state = UpstreamState(jwks=jwks_document([signing_key]), signer=signing_key)
    urls: dict[str, str] = {}
    routed = {spec.name for spec in SERVICES if spec.routes} | {"user"}
    async with AsyncExitStack() as stack:
        for name in sorted(routed):
            url, _ = await stack.enter_async_context(serve(upstream_app(name, state)))
            urls[name] = url
        yield Upstreams(state, urls, signing_key)


@pytest.fixture
def state(upstreams: Upstreams) -> UpstreamState:
    upstreams.state.failing = False
    upstreams.state.hits.clear()
    upstreams.state.resolve_headers.clear()
    return upstreams.state


GatewayFactory = Callable[..., AbstractAsyncContextManager[str]]

# Every gateway test runs twice: on uvicorn's plain httptools protocol (the ASGI app, as any
# ASGI server would run it) and on `gateway.server:GatewayHttpProtocol`, which serves `/api/*`
# without ASGI (what `make run` and production use). Both must behave the same.
PROTOCOLS = {"asgi": "httptools", "fast": "gateway.server:GatewayHttpProtocol"}


# Most tests read /metrics on the public port with this token; test_surfaces covers the
# default (no token: 404 there, served on the operator listener).
METRICS_TOKEN = "gateway-tests-metrics-token"
METRICS_AUTH = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def gateway_settings(upstreams: Upstreams, **overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        # services without a stand-in here answer nothing (a closed port), as when not deployed
        "service_urls": {
            **{spec.name: "http://127.0.0.1:9" for spec in SERVICES},
            **upstreams.urls,
        },
        "jwks_url": f"{upstreams.urls['user']}/.well-known/jwks.json",
        "rate_limit_anon": "100000/minute",
        "rate_limit_user": "100000/minute",
        "rate_limit_auth": "100000/minute",
        "log_json": False,
        "openapi_refresh_seconds": 3600,
        "metrics_token": METRICS_TOKEN,
    }
    values.update(overrides)
    return GatewaySettings(**values)


@pytest_asyncio.fixture(params=list(PROTOCOLS))
async def make_gateway(
    request: pytest.FixtureRequest, upstreams: Upstreams, redis_server: Any
) -> AsyncIterator[GatewayFactory]:
    """Start a gateway (uvicorn, real port) with settings overrides; Redis is flushed first."""
    client = aioredis.from_url(redis_server.url)
    await client.flushdb()
    await client.aclose()

    @asynccontextmanager
    async def factory(**overrides: Any) -> AsyncIterator[str]:
        overrides.setdefault("redis_url", redis_server.url)
        app = create_app(gateway_settings(upstreams, **overrides))
        async with serve(app, http=PROTOCOLS[request.param]) as (url, _):
            yield url

    factory.protocol = request.param  # type: ignore[attr-defined]  # "asgi" or "fast"
    yield factory


@pytest_asyncio.fixture(scope="session", params=list(PROTOCOLS))
async def gateway(
    request: pytest.FixtureRequest, upstreams: Upstreams, redis_server: Any
) -> AsyncIterator[str]:
    """One gateway with default settings and limits too high to trigger, shared by many tests."""
    app = create_app(gateway_settings(upstreams, redis_url=redis_server.url))
    async with serve(app, http=PROTOCOLS[request.param]) as (url, _):
        yield url


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(claims: dict[str, Any], kid: str) -> str:
    """An `alg: none` token: header and claims, empty signature."""
    header = {"alg": "none", "typ": "JWT", "kid": kid}
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}."


async def raw_request(base_url: str, request_line: str, headers: str = "") -> tuple[int, bytes]:
    """Send bytes exactly as written (httpx would normalise `..` and escapes away)."""
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"{request_line} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n".encode()
    )
    await writer.drain()
    data = await reader.read()
    writer.close()
    status = int(data.split(b" ", 2)[1])
    return status, data
