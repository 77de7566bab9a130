"""Samples suite health on a timer into gauges, so Prometheus can alert on lag and dead letters."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from prometheus_client import Gauge

from admin_service.domain.health import SuiteHealth

log = logging.getLogger("admin_service.health_sampler")

SERVICE_READY = Gauge(
    "paygate_service_ready",
    "1 when the service's /ready answered 200 at the last sample",
    ["service"],
)
CONSUMER_LAG = Gauge(
    "paygate_consumer_lag", "Messages a consumer group has not committed yet", ["group", "topic"]
)
DEAD_LETTERS = Gauge("paygate_dead_letters", "Messages on a dead-letter topic", ["topic"])
OUTBOX_BACKLOG = Gauge(
    "paygate_suite_outbox_backlog", "Outbox rows a service has not published yet", ["service"]
)


class HealthSampler:
    """Every `interval` seconds: one `SuiteHealth.snapshot()` written to the gauges above."""

    name = "admin health sampler"

    def __init__(self, health: SuiteHealth, interval: float) -> None:
        self.health = health
        self.interval = interval
        self._stopping = asyncio.Event()

    async def sample(self) -> None:
        snapshot = await self.health.snapshot()
        for service in snapshot["services"]:
            SERVICE_READY.labels(service["name"]).set(1 if service["status"] == "ready" else 0)
        for consumer in snapshot["consumers"]:
            if consumer["lag"] is not None:
                CONSUMER_LAG.labels(consumer["group"], consumer["topic"]).set(consumer["lag"])
        for queue in snapshot["dead_letters"]:
            DEAD_LETTERS.labels(queue["topic"]).set(queue["depth"])
        for outbox in snapshot["outbox"]:
            OUTBOX_BACKLOG.labels(outbox["service"]).set(outbox["backlog"])

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.sample()
            except Exception:  # a failed sample must not stop the next one
                log.exception("health sample failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)

    async def stop(self) -> None:
        self._stopping.set()
