"""/admin/health asks every service and the broker: a stopped service turns red, then green."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from admin_service.main import create_app
from admin_service.probes import outbox_backlog
from admin_service.settings import Settings
from paygate_common.events.topics import DLQ_TOPICS, PAYMENT_EVENT
from paygate_devstack.events_testing import wait_for
from paygate_devstack.process import free_port
from paygate_devstack.testkit import TokenMint, app_client


@pytest.fixture(scope="module")
def order_service(paygate_stack: Any) -> Iterator[Any]:
    """An order-service to watch, on a port of its own, stopped after the module."""
    proc = paygate_stack.start_service(
        "order", {"ORDER_SERVICE_LIMITS_ENABLED": "false"}, port=free_port()
    )
    try:
        yield proc
    finally:
        proc.stop()
        if proc in paygate_stack.started:
            paygate_stack.started.remove(proc)


@pytest.fixture
async def health_admin(
    admin_database: str, paygate_stack: Any, order_service: Any, token_mint: TokenMint
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    settings = Settings(
        database_url=admin_database,
        kafka_bootstrap_servers=paygate_stack.kafka.bootstrap,
        redis_url=paygate_stack.redis.url,
        paygate_service_urls=json.dumps({**paygate_stack.urls, "order": order_service.url}),
        health_services=["order"],
        health_timeout_seconds=1.0,
        log_json=False,
    )
    async with app_client(create_app(settings), mint=token_mint) as pair:
        yield pair


async def health(client: httpx.AsyncClient, mint: TokenMint) -> dict[str, Any]:
    r = await client.get("/admin/health", headers=mint.auth(role="admin"))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_health_reports_readiness_lag_dead_letters_and_outbox(
    health_admin: tuple[FastAPI, httpx.AsyncClient], token_mint: TokenMint
) -> None:
    _, client = health_admin
    body = await health(client, token_mint)
    [order] = body["services"]
    assert order["name"] == "order" and order["status"] == "ready"
    assert order["checks"]["database"] == "ok"
    [consumer] = [c for c in body["consumers"] if c["topic"] == PAYMENT_EVENT]
    assert consumer["group"] == "order-service" and isinstance(consumer["lag"], int)
    assert {d["topic"] for d in body["dead_letters"]} == set(DLQ_TOPICS)
    assert [o["service"] for o in body["outbox"]] == ["order"]
    assert body["status"] in ("ok", "degraded")


async def test_a_stopped_service_turns_red_within_10_s_and_green_after(
    health_admin: tuple[FastAPI, httpx.AsyncClient], token_mint: TokenMint, order_service: Any
) -> None:
    _, client = health_admin
    order_service.pause()  # SIGSTOP: the port still accepts connections, nothing answers
    try:
        started = time.monotonic()

        async def red() -> dict[str, Any] | None:
            body = await health(client, token_mint)
            return body if body["status"] == "down" else None

        body = await wait_for(red, timeout=10)
        assert time.monotonic() - started < 10
        assert body["services"][0]["status"] == "down"
    finally:
        order_service.resume()

    async def green() -> bool:
        return (await health(client, token_mint))["services"][0]["status"] == "ready"

    await wait_for(green, timeout=30)


def test_outbox_backlog_is_read_from_the_services_metrics() -> None:
    exposition = (
        "# HELP paygate_outbox_pending Outbox rows not yet published\n"
        "# TYPE paygate_outbox_pending gauge\n"
        'paygate_outbox_pending{service="order-service"} 7.0\n'
    )
    assert outbox_backlog(exposition) == 7
    assert outbox_backlog("# nothing here\n") is None


async def test_health_is_sampled_into_the_gauges_prometheus_alerts_on(
    health_admin: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    from prometheus_client import REGISTRY

    app, client = health_admin
    [sampler] = app.state.workers
    await sampler.sample()
    assert REGISTRY.get_sample_value("paygate_service_ready", {"service": "order"}) == 1
    lag = REGISTRY.get_sample_value(
        "paygate_consumer_lag", {"group": "order-service", "topic": PAYMENT_EVENT}
    )
    assert lag is not None and lag >= 0
    for topic in DLQ_TOPICS:
        assert REGISTRY.get_sample_value("paygate_dead_letters", {"topic": topic}) is not None
    exposition = (await client.get("/metrics")).text
    assert 'paygate_consumer_lag{group="order-service",topic="payment.event"}' in exposition
