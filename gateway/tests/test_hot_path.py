"""The hot path as `gateway.main:run` serves it: gateway.server's protocol + the pooled client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest_asyncio
import uvicorn
from gateway_support import free_port

from gateway.main import create_app
from gateway.settings import GatewaySettings
from paygate_common.services import SERVICES

BIG = bytes(range(256)) * (3 * 4096)  # 3 MiB: more than the client buffers before pausing


async def upstream(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A raw ASGI upstream, so the framing of each answer is exactly what the test needs."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    headers: list[tuple[bytes, bytes]] = []
    status = 200
    if path == "/orders/big":
        payload = BIG
        headers.append((b"content-length", str(len(payload)).encode()))
    elif path == "/orders/chunked":
        # no content-length: uvicorn sends it chunked, in two pieces
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hello ", "more_body": True})
        await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"world"})
        return
    elif path == "/orders/close":
        payload = b"closing"
        headers += [(b"content-length", b"7"), (b"connection", b"close")]
    elif path == "/orders/empty":
        status, payload = 204, b""
    else:
        seen = f"{scope['method']} {path} {len(body)}".encode()
        payload = seen
        headers.append((b"content-length", str(len(payload)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


@asynccontextmanager
async def serve(app: Any, **config: Any) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            proxy_headers=False,
            **config,
        )
    )
    task = asyncio.get_running_loop().create_task(server.serve())
    deadline = time.monotonic() + 10
    while not server.started:
        if task.done():
            task.result()
        assert time.monotonic() < deadline, "server did not start"
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest_asyncio.fixture
async def fast_gateway() -> AsyncIterator[str]:
    """Upstream with a short keep-alive; the gateway on `gateway.server:GatewayHttpProtocol`."""
    async with serve(upstream, timeout_keep_alive=1) as up:
        settings = GatewaySettings(
            service_urls={s.name: up for s in SERVICES if s.routes},
            auth_enabled=False,
            rate_limit_enabled=False,
            log_json=False,
            openapi_refresh_seconds=3600,
        )
        async with serve(
            create_app(settings), http="gateway.server:GatewayHttpProtocol", lifespan="on"
        ) as url:
            yield url


async def test_small_answers_and_bodies_pass_through(fast_gateway: str) -> None:
    async with httpx.AsyncClient(base_url=fast_gateway) as client:
        get = await client.get("/api/v1/orders/o1")
        post = await client.post("/api/v1/orders", content=b"x" * 5000)
        empty_post = await client.post("/api/v1/orders")
        no_content = await client.get("/api/v1/orders/empty")
    assert (get.status_code, get.content) == (200, b"GET /orders/o1 0")
    assert get.headers["content-length"] == str(len(get.content))
    assert "x-request-id" in get.headers
    assert post.content == b"POST /orders 5000"
    assert empty_post.content == b"POST /orders 0"
    assert (no_content.status_code, no_content.content) == (204, b"")


async def test_big_answer_is_streamed_intact(fast_gateway: str) -> None:
    async with httpx.AsyncClient(base_url=fast_gateway) as client:
        for _ in range(2):  # the second one reuses the pooled connection
            response = await client.get("/api/v1/orders/big")
            assert response.status_code == 200
            assert response.headers["content-length"] == str(len(BIG))
            assert response.content == BIG


async def test_chunked_answer_is_relayed_whole(fast_gateway: str) -> None:
    async with httpx.AsyncClient(base_url=fast_gateway) as client:
        response = await client.get("/api/v1/orders/chunked")
        again = await client.get("/api/v1/orders/o2")
    assert response.content == b"hello world"
    assert "transfer-encoding" not in response.headers or "content-length" not in response.headers
    assert again.content == b"GET /orders/o2 0"


async def test_head_has_no_body_and_keeps_the_connection_usable(fast_gateway: str) -> None:
    async with httpx.AsyncClient(base_url=fast_gateway) as client:
        head = await client.head("/api/v1/orders/big")
        after = await client.get("/api/v1/orders/o3")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(BIG))
    assert after.content == b"GET /orders/o3 0"


async def test_upstream_closing_connections_is_not_an_error(fast_gateway: str) -> None:
    async with httpx.AsyncClient(base_url=fast_gateway) as client:
        closed = await client.get("/api/v1/orders/close")
        next_one = await client.get("/api/v1/orders/o4")
        await asyncio.sleep(1.5)  # the upstream's keep-alive timeout closes the idle socket
        after_idle = await client.post("/api/v1/orders", content=b"abc")  # never retried
    assert (closed.status_code, closed.content) == (200, b"closing")
    assert "connection" not in closed.headers or closed.headers["connection"] != "close"
    assert next_one.content == b"GET /orders/o4 0"
    assert (after_idle.status_code, after_idle.content) == (200, b"POST /orders 3")


async def test_pipelined_requests_get_their_own_answers_in_order(fast_gateway: str) -> None:
    host, port = fast_gateway.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    request = "GET /api/v1/orders/{} HTTP/1.1\r\nHost: x\r\n\r\n"
    writer.write((request.format("p1") + request.format("p2")).encode())
    writer.write(b"GET /api/v1/orders/p3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert data.count(b"HTTP/1.1 200 OK") == 3
    first, second, third = (data.index(f"GET /orders/{p} 0".encode()) for p in ("p1", "p2", "p3"))
    assert first < second < third
