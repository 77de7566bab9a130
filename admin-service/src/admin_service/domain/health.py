"""Suite health: one overall status from every service's readiness, consumer lag, DLQs, outboxes."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from admin_service.probes import KafkaProbe, ServiceProbe, probe_service
from paygate_common.events.topics import DLQ_TOPICS
from paygate_common.services import SERVICES, spec_for
from paygate_common.settings import ServiceSettings

log = logging.getLogger("admin_service.health")


def overall_status(
    services: list[ServiceProbe],
    lags: list[dict[str, Any]],
    dead: list[dict[str, Any]],
    *,
    lag_warning: int,
) -> str:
    """`down` if a service is unreachable or not ready, `degraded` on lag or dead letters."""
    if any(s.status != "ready" for s in services):
        return "down"
    if any(c["lag"] is None or c["lag"] > lag_warning for c in lags):
        return "degraded"
    if any(d["depth"] for d in dead):
        return "degraded"
    return "ok"


class SuiteHealth:
    """Asks every service and the broker; each part fails on its own, never the whole answer."""

    def __init__(
        self, settings: ServiceSettings, *, services: list[str], lag_warning: int, timeout: float
    ) -> None:
        self.settings = settings
        self.names = services or [s.name for s in SERVICES]
        self.lag_warning = lag_warning
        self.http = httpx.AsyncClient(timeout=timeout)
        self.kafka = KafkaProbe(settings, timeout)

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.kafka.aclose()

    async def snapshot(self) -> dict[str, Any]:
        probes = await asyncio.gather(
            *(probe_service(self.http, n, self.settings.service_url(n)) for n in self.names)
        )
        consumers: list[dict[str, Any]] = []
        dead_letters: list[dict[str, Any]] = []
        try:
            for name in self.names:
                spec = spec_for(name)
                for topic in spec.consumes:
                    consumers.append(
                        {
                            "group": spec.service_name,
                            "topic": topic,
                            "lag": await self.kafka.lag(spec.service_name, topic),
                        }
                    )
            for topic in DLQ_TOPICS:
                offsets = await self.kafka.topic_offsets(topic)
                dead_letters.append({"topic": topic, "depth": offsets.end - offsets.beginning})
        except Exception as exc:  # the broker is down or hung: say so per consumer
            log.warning("kafka probe failed: %s", type(exc).__name__)
            await self.kafka.reset()
            seen = {(c["group"], c["topic"]) for c in consumers}
            for name in self.names:
                spec = spec_for(name)
                for topic in spec.consumes:
                    if (spec.service_name, topic) not in seen:
                        consumers.append({"group": spec.service_name, "topic": topic, "lag": None})
        return {
            "status": overall_status(
                list(probes), consumers, dead_letters, lag_warning=self.lag_warning
            ),
            "services": [{"name": p.name, "status": p.status, "checks": p.checks} for p in probes],
            "consumers": consumers,
            "dead_letters": dead_letters,
            "outbox": [
                {"service": p.name, "backlog": p.outbox_backlog}
                for p in probes
                if p.outbox_backlog is not None
            ],
        }
