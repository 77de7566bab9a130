"""413, 502, 504 and the circuit breaker's open → 503 → half-open → closed cycle."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
from gateway_support import METRICS_AUTH, Upstreams, UpstreamState, free_port


async def test_body_over_the_limit_is_413_by_content_length(
    make_gateway,
    upstreams: Upstreams,
    state: UpstreamState,  # type: ignore[no-untyped-def]
) -> None:
    async with (
        make_gateway(max_body_bytes=1000) as url,
        httpx.AsyncClient(base_url=url, headers=upstreams.auth()) as client,
    ):
        small = await client.post("/api/v1/orders", content=b"x" * 1000)
        big = await client.post("/api/v1/orders", content=b"x" * 1001)
    assert small.status_code == 200
    assert small.json()["body_len"] == 1000
    assert big.status_code == 413
    assert big.json()["code"] == "payload_too_large"


async def test_streamed_body_over_the_limit_is_413(
    make_gateway,
    upstreams: Upstreams,
    state: UpstreamState,  # type: ignore[no-untyped-def]
) -> None:
    async def chunks(n: int) -> AsyncIterator[bytes]:
        for _ in range(n):
            yield b"y" * 4096
            await asyncio.sleep(0)

    async with (
        make_gateway(max_body_bytes=64 * 1024) as url,
        httpx.AsyncClient(base_url=url, headers=upstreams.auth()) as client,
    ):
        ok = await client.post("/api/v1/orders", content=chunks(8))  # chunked, 32 KiB
        big = await client.post("/api/v1/orders", content=chunks(64))  # chunked, 256 KiB
    assert ok.status_code == 200
    assert ok.json()["body_len"] == 8 * 4096
    assert big.status_code == 413


async def test_unreachable_upstream_is_502(
    make_gateway,
    upstreams: Upstreams,
    state: UpstreamState,  # type: ignore[no-untyped-def]
) -> None:
    urls = {**upstreams.urls, "payment": f"http://127.0.0.1:{free_port()}"}
    async with (
        make_gateway(service_urls=urls) as url,
        httpx.AsyncClient(base_url=url, headers=upstreams.auth()) as client,
    ):
        response = await client.post("/api/v1/payments", json={"amount": 100})
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "upstream_unreachable"


async def test_slow_upstream_is_504_after_the_route_timeout(
    make_gateway,
    upstreams: Upstreams,
    state: UpstreamState,  # type: ignore[no-untyped-def]
) -> None:
    async with (
        make_gateway(upstream_timeout_seconds=0.3) as url,
        httpx.AsyncClient(base_url=url, headers=upstreams.auth()) as client,
    ):
        fast = await client.get("/api/v1/orders/slow", params={"s": "0.01"})
        slow = await client.get("/api/v1/orders/slow", params={"s": "2"})
    assert fast.status_code == 200
    assert slow.status_code == 504
    assert slow.json()["code"] == "upstream_timeout"


async def test_breaker_opens_answers_503_then_probes_and_closes(
    make_gateway,
    upstreams: Upstreams,
    state: UpstreamState,  # type: ignore[no-untyped-def]
) -> None:
    async with (
        make_gateway(breaker_failure_threshold=3, breaker_reset_seconds=0.5) as url,
        httpx.AsyncClient(base_url=url, headers=upstreams.auth()) as client,
    ):
        state.failing = True
        failures = [(await client.get("/api/v1/orders/flaky")).status_code for _ in range(3)]
        assert failures == [500, 500, 500]
        opened = await client.get("/api/v1/orders/flaky")
        assert opened.status_code == 503
        assert opened.json()["code"] == "upstream_unavailable"
        assert int(opened.headers["retry-after"]) >= 1
        assert state.hits["flaky"] == 3  # the open breaker kept the upstream out of it
        health = (await client.get("/health")).json()
        assert health["upstreams"]["order"]["circuit"]["state"] == "open"
        assert health["status"] == "degraded"
        assert (
            'paygate_gateway_breaker_state{service="order"} 2.0'
            in (await client.get("/metrics", headers=METRICS_AUTH)).text
        )
        # other services are not affected
        assert (await client.get("/api/v1/users/me")).status_code == 200

        await asyncio.sleep(0.6)  # half-open: one probe goes through, still failing
        assert (await client.get("/health")).json()["upstreams"]["order"]["circuit"][
            "state"
        ] == "half-open"
        assert (await client.get("/api/v1/orders/flaky")).status_code == 500
        assert (await client.get("/api/v1/orders/flaky")).status_code == 503  # reopened

        state.failing = False  # the service recovers
        await asyncio.sleep(0.6)
        assert (await client.get("/api/v1/orders/flaky")).status_code == 200  # the probe
        statuses = [(await client.get("/api/v1/orders/flaky")).status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        health = (await client.get("/health")).json()
        assert health["upstreams"]["order"]["circuit"]["state"] == "closed"
        assert (
            'paygate_gateway_breaker_state{service="order"} 0.0'
            in (await client.get("/metrics", headers=METRICS_AUTH)).text
        )


async def test_breaker_counts_unreachable_upstreams(
    make_gateway,
    upstreams: Upstreams,
    state: UpstreamState,  # type: ignore[no-untyped-def]
) -> None:
    urls = {**upstreams.urls, "notification": f"http://127.0.0.1:{free_port()}"}
    async with (
        make_gateway(service_urls=urls, breaker_failure_threshold=2) as url,
        httpx.AsyncClient(base_url=url, headers=upstreams.auth()) as client,
    ):
        statuses = [(await client.get("/api/v1/notifications")).status_code for _ in range(3)]
    assert statuses == [502, 502, 503]
