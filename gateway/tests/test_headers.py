"""Header hygiene: hop-by-hop dropped both ways, request ids, X-Forwarded-*, no forged identity."""

from __future__ import annotations

import httpx
from gateway_support import Upstreams, UpstreamState


async def test_hop_by_hop_and_forged_headers_never_reach_the_upstream(
    gateway: str, upstreams: Upstreams, state: UpstreamState
) -> None:
    headers = {
        **upstreams.auth(),
        "Connection": "keep-alive, X-Secret-Hop",
        "X-Secret-Hop": "drop me",
        "Keep-Alive": "timeout=5",
        "TE": "trailers",
        "Proxy-Authorization": "Basic Zm9vOmJhcg==",
        "Upgrade": "h2c",
        "X-User-Id": "00000000-0000-0000-0000-000000000001",
        "X-Forwarded-For": "6.6.6.6",
        "X-Custom": "kept",
    }
    async with httpx.AsyncClient(base_url=gateway) as client:
        response = await client.get("/api/v1/orders/o1", headers=headers)
    seen = response.json()["headers"]
    for name in ("x-secret-hop", "keep-alive", "te", "proxy-authorization", "upgrade", "x-user-id"):
        assert name not in seen, name
    assert seen.get("connection", "keep-alive") == "keep-alive"  # aiohttp's own, to the pool
    assert seen["x-custom"] == "kept"
    assert seen["authorization"].startswith("Bearer ")  # upstreams verify for themselves
    # the client cannot choose the address the upstream sees
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-host"] == gateway.removeprefix("http://")
    # response side: upstream's Keep-Alive gone, its own headers kept
    assert "keep-alive" not in response.headers
    assert response.headers["x-upstream"] == "order"
    assert list(response.headers.keys()).count("date") == 1


async def test_request_id_is_kept_when_given(
    gateway: str, upstreams: Upstreams, state: UpstreamState
) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        response = await client.get(
            "/api/v1/orders/o1", headers={**upstreams.auth(), "X-Request-ID": "abc-123"}
        )
    assert response.headers["x-request-id"] == "abc-123"
    assert response.json()["headers"]["x-request-id"] == "abc-123"
    assert response.json()["header_list"].count("x-request-id") == 1


async def test_request_id_is_added_when_missing_or_unsafe(
    gateway: str, upstreams: Upstreams, state: UpstreamState
) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        plain = await client.get("/api/v1/orders/o1", headers=upstreams.auth())
        unsafe = await client.get(
            "/api/v1/orders/o1", headers={**upstreams.auth(), "X-Request-ID": "bad id <script>"}
        )
        problem = await client.get("/api/v1/orders/o1")
    for response in (plain, unsafe):
        rid = response.headers["x-request-id"]
        assert rid == response.json()["headers"]["x-request-id"]
        assert len(rid) >= 16 and rid.isalnum()
    assert plain.headers["x-request-id"] != unsafe.headers["x-request-id"]
    assert problem.status_code == 401
    assert problem.json()["request_id"] == problem.headers["x-request-id"]


async def test_cors_is_off_by_default(gateway: str, state: UpstreamState) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        response = await client.get(
            "/api/v1/auth/signin", headers={"Origin": "https://shop.example"}
        )
    assert "access-control-allow-origin" not in response.headers


async def test_cors_from_settings(make_gateway, state: UpstreamState) -> None:  # type: ignore[no-untyped-def]
    async with (
        make_gateway(cors_allow_origins=["https://shop.example"]) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        preflight = await client.options(
            "/api/v1/orders",
            headers={
                "Origin": "https://shop.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        other = await client.options(
            "/api/v1/orders",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://shop.example"
    assert other.status_code == 400
