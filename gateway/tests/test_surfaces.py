"""The gateway's own surfaces: metrics off the public port, a /ready that checks, working docs."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from gateway_support import GatewayFactory, Upstreams, UpstreamState, free_port

from gateway.openapi import API_KEY_SCHEME, merge_specs
from gateway.routes import ROUTES, RouteTable
from paygate_common.auth import CurrentPrincipal


async def test_metrics_are_not_on_the_public_port_by_default_but_on_the_operator_listener(
    make_gateway: GatewayFactory, upstreams: Upstreams, state: UpstreamState
) -> None:
    operator_port = free_port()
    async with (
        make_gateway(metrics_token=None, metrics_port=operator_port) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        assert (await client.get("/api/v1/orders/m", headers=upstreams.auth())).status_code == 200
        public = await client.get("/metrics")
        operator = await client.get(f"http://127.0.0.1:{operator_port}/metrics")
        elsewhere = await client.get(f"http://127.0.0.1:{operator_port}/api/v1/orders/m")
    assert public.status_code == 404
    assert public.headers["content-type"] == "application/problem+json"
    assert "paygate_gateway" not in public.text
    assert operator.status_code == 200
    assert 'paygate_gateway_requests_total{route="/api/v1/orders",status="200"}' in operator.text
    assert elsewhere.status_code == 404  # the operator port proxies nothing


async def test_a_metrics_token_opens_the_public_metrics_to_its_holder_only(
    make_gateway: GatewayFactory, upstreams: Upstreams, state: UpstreamState
) -> None:
    async with (
        make_gateway(metrics_token="s3cret-scrape-token") as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        anonymous = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer guess"})
        user = await client.get("/metrics", headers=upstreams.auth())
        right = await client.get(
            "/metrics", headers={"Authorization": "Bearer s3cret-scrape-token"}
        )
    assert [anonymous.status_code, wrong.status_code, user.status_code] == [401, 401, 401]
    assert right.status_code == 200 and "paygate_gateway" in right.text


async def test_ready_checks_redis_the_signing_keys_and_every_upstream_address(
    make_gateway: GatewayFactory, upstreams: Upstreams, state: UpstreamState
) -> None:
    async with make_gateway() as url, httpx.AsyncClient(base_url=url) as client:
        ready = await client.get("/ready")
    assert ready.status_code == 200, ready.text
    # every service the route table names (from the registry)
    assert ready.json()["checks"] == {
        "redis": "ok",
        "jwks": "ok",
        **{f"upstream:{name}": "ok" for name in {r.service for r in ROUTES}},
    }


async def test_ready_fails_without_redis_or_with_an_unresolvable_upstream(
    make_gateway: GatewayFactory, upstreams: Upstreams, state: UpstreamState
) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    async with (
        make_gateway(redis_url=dead_redis, ready_timeout_seconds=1.0) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        no_redis = await client.get("/ready")
    assert no_redis.status_code == 503
    assert no_redis.json()["checks"]["redis"].startswith("down")

    urls = {**upstreams.urls, "order": "http://order-service.invalid:8008"}
    async with (
        make_gateway(service_urls=urls, ready_timeout_seconds=1.0) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        no_order = await client.get("/ready")
    assert no_order.status_code == 503
    checks = no_order.json()["checks"]
    assert checks["upstream:order"].startswith("unresolvable")
    assert checks["upstream:user"] == "ok" and checks["redis"] == "ok"

    async with (
        make_gateway(
            jwks_url=f"http://127.0.0.1:{free_port()}/.well-known/jwks.json",
            ready_timeout_seconds=1.0,
        ) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        keyless = await client.get("/ready")
    assert keyless.status_code == 503
    assert keyless.json()["checks"]["jwks"].startswith("down")


def _service_spec(path: str) -> dict[str, Any]:
    """A real service's document: its routes depend on the shared CurrentPrincipal."""
    app = FastAPI()

    @app.get(path)
    async def read(principal: CurrentPrincipal) -> dict[str, str]:
        return {}

    return app.openapi()


def test_merged_authorize_button_posts_to_the_gateways_token_route() -> None:
    merged = merge_specs(
        {
            "notification": _service_spec("/notifications"),
            "order": _service_spec("/orders"),
            "user": _service_spec("/users/me"),
        },
        RouteTable(),
    )
    schemes = merged["components"]["securitySchemes"]
    oauth = [s for s in schemes.values() if s.get("type") == "oauth2"]
    # every service's `/auth/token` scheme is one: not a renamed copy per service in Authorize
    assert len(oauth) == 1, schemes
    for scheme in oauth:
        assert scheme["flows"]["password"]["tokenUrl"] == "/api/v1/auth/token"
    assert schemes[API_KEY_SCHEME] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "API key (pgk_live_… or pgk_test_…)",
        "description": "A merchant API key, sent as a bearer token.",
    }
    for path in ("/api/v1/orders", "/api/v1/notifications", "/api/v1/users/me"):
        security = merged["paths"][path]["get"]["security"]
        assert {API_KEY_SCHEME: []} in security
        assert len(security) == 2  # the JWT scheme, or an API key


async def test_the_merged_token_url_answers_through_the_gateway(
    gateway: str, upstreams: Upstreams, state: UpstreamState
) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        spec = (await client.get("/openapi.json")).json()
        token = await client.post("/api/v1/auth/token", data={"username": "a", "password": "b"})
    assert API_KEY_SCHEME in spec["components"]["securitySchemes"]
    assert token.status_code != 404  # routed to user-service (the echo upstream answers 200)
