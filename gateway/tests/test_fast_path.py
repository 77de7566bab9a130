"""`gateway.server` serves `/api/*` without ASGI; what must still go through ASGI does, in order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from gateway_support import (
    METRICS_AUTH,
    PROTOCOLS,
    GatewayFactory,
    Upstreams,
    UpstreamState,
    gateway_settings,
    serve,
)

from gateway.main import create_app
from gateway.proxy import Proxy


@pytest.fixture
def asgi_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths that reached the proxy through its ASGI entry."""
    calls: list[str] = []
    original = Proxy.__call__

    async def counting(self: Proxy, scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["path"])
        await original(self, scope, receive, send)

    monkeypatch.setattr(Proxy, "__call__", counting)
    return calls


async def _read_until_closed(host: str, port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(payload)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return data


async def test_api_requests_skip_asgi_and_big_or_chunked_bodies_do_not(
    make_gateway: GatewayFactory, upstreams: Upstreams, state: UpstreamState, asgi_calls: list[str]
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"a" * 1000
        yield b"b" * 1000

    async with make_gateway() as url, httpx.AsyncClient(base_url=url) as client:
        small = await client.post("/api/v1/orders", content=b"x" * 100, headers=upstreams.auth())
        big = await client.post("/api/v1/orders", content=b"y" * 200_000, headers=upstreams.auth())
        chunked = await client.post("/api/v1/orders", content=chunks(), headers=upstreams.auth())
        health = await client.get("/ready")
    assert (small.status_code, small.json()["body_len"]) == (200, 100)
    assert (big.status_code, big.json()["body_len"]) == (200, 200_000)
    assert (chunked.status_code, chunked.json()["body_len"]) == (200, 2000)
    assert health.status_code == 200
    if make_gateway.protocol == "fast":  # type: ignore[attr-defined]
        # only the 200 kB and the chunked upload went through ASGI
        assert asgi_calls == ["/api/v1/orders", "/api/v1/orders"]
    else:
        assert asgi_calls == ["/api/v1/orders"] * 3


async def test_cors_wrapped_gateway_answers_api_calls_with_cors_headers(
    make_gateway: GatewayFactory, upstreams: Upstreams, state: UpstreamState
) -> None:
    origin = "https://shop.example"
    async with (
        make_gateway(cors_allow_origins=[origin]) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        response = await client.get(
            "/api/v1/orders/o1", headers={**upstreams.auth(), "Origin": origin}
        )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == origin
    assert "x-request-id" in response.headers.get("access-control-expose-headers", "").lower()


async def test_client_gone_mid_body_forwards_nothing(
    gateway: str, upstreams: Upstreams, state: UpstreamState
) -> None:
    host, port = gateway.removeprefix("http://").split(":")
    _reader, writer = await asyncio.open_connection(host, int(port))
    token = upstreams.token()
    writer.write(
        b"POST /api/v1/orders/partial HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
        b"Authorization: Bearer " + token.encode() + b"\r\n\r\n" + b"z" * 10
    )
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.close()
    await asyncio.sleep(0.2)
    async with httpx.AsyncClient(base_url=gateway) as client:  # the gateway still serves
        after = await client.get("/api/v1/orders/after", headers=upstreams.auth())
    assert after.status_code == 200
    assert state.hits["order /orders/partial"] == 0


async def test_http_1_0_gets_one_answer_and_the_connection_closes(
    gateway: str, upstreams: Upstreams, state: UpstreamState
) -> None:
    host, port = gateway.removeprefix("http://").split(":")
    request = (
        b"GET /api/v1/orders/old HTTP/1.0\r\nAuthorization: Bearer "
        + upstreams.token().encode()
        + b"\r\n\r\n"
    )
    data = await _read_until_closed(host, int(port), request)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"\r\nconnection: close" in head.lower()
    assert b'"/orders/old"' in body
    assert head.lower().count(b"\r\ndate: ") == 1


async def test_pipelined_gateway_and_api_requests_keep_their_order(
    gateway: str, upstreams: Upstreams, state: UpstreamState
) -> None:
    host, port = gateway.removeprefix("http://").split(":")
    auth = b"Authorization: Bearer " + upstreams.token().encode() + b"\r\n"
    data = await _read_until_closed(
        host,
        int(port),
        b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n"
        + b"GET /api/v1/orders/q1 HTTP/1.1\r\nHost: x\r\n"
        + auth
        + b"\r\n"
        + b"GET /api/v1/orders/q2 HTTP/1.1\r\nHost: x\r\n"
        + auth
        + b"\r\n"
        + b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert data.count(b"HTTP/1.1 200 OK") == 4
    positions = [data.index(b'"status":"ready"')]
    positions.append(data.index(b'"/orders/q1"'))
    positions.append(data.index(b'"/orders/q2"'))
    positions.append(data.rindex(b'"status":"ready"'))
    assert positions == sorted(positions) and len(set(positions)) == 4


async def test_expect_100_continue_is_answered_and_forwarded(
    gateway: str, upstreams: Upstreams, state: UpstreamState
) -> None:
    host, port = gateway.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n"
        b"Authorization: Bearer " + upstreams.token().encode() + b"\r\nConnection: close\r\n\r\n"
    )
    await writer.drain()
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert interim.startswith(b"HTTP/1.1 100")
    writer.write(b"hello")
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert data.startswith(b"HTTP/1.1 200")
    assert b'"body_len":5' in data


async def test_metrics_count_answers_and_upstream_latency(
    gateway: str, upstreams: Upstreams, state: UpstreamState
) -> None:
    def count(text: str, prefix: str) -> float:
        return sum(
            float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
        )

    ok = 'paygate_gateway_requests_total{route="/api/v1/orders",status="200"}'
    unauth = 'paygate_gateway_requests_total{route="/api/v1/orders",status="401"}'
    latency = 'paygate_gateway_upstream_seconds_count{service="order"}'
    async with httpx.AsyncClient(base_url=gateway) as client:
        before = (await client.get("/metrics", headers=METRICS_AUTH)).text
        for _ in range(3):
            assert (
                await client.get("/api/v1/orders/m", headers=upstreams.auth())
            ).status_code == 200
        assert (await client.get("/api/v1/orders/m")).status_code == 401
        after = (await client.get("/metrics", headers=METRICS_AUTH)).text
    assert count(after, ok) - count(before, ok) == 3
    assert count(after, unauth) - count(before, unauth) == 1
    assert count(after, latency) - count(before, latency) == 3
    assert 'paygate_gateway_upstream_seconds_bucket{le="+Inf",service="order"}' in after


async def test_keep_alive_timeout_closes_idle_connections_only(
    upstreams: Upstreams, state: UpstreamState, redis_server: Any
) -> None:
    settings = gateway_settings(upstreams, redis_url=redis_server.url)
    app = create_app(settings)
    async with serve(app, http=PROTOCOLS["fast"], timeout_keep_alive=1) as (url, _):
        host, port = url.removeprefix("http://").split(":")
        request = (
            b"GET /api/v1/orders/ka HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + upstreams.token().encode()
            + b"\r\n\r\n"
        )
        reader, writer = await asyncio.open_connection(host, int(port))
        for _ in range(4):  # busy for 1.6 s in all, never idle for 1 s: stays open
            writer.write(request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            await asyncio.sleep(0.4)
        await asyncio.sleep(1.0)  # now idle for 1.4 s: closed by the gateway
        assert await asyncio.wait_for(reader.read(), 2) == b""
        writer.close()
