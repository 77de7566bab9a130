"""What admin-service asks the rest of the suite: each service's /ready and /metrics, Kafka offsets."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families

from paygate_common.settings import ServiceSettings

log = logging.getLogger("admin_service.probes")


@dataclass(frozen=True)
class ServiceProbe:
    name: str
    status: str  # ready | not_ready | down
    checks: dict[str, str]
    outbox_backlog: int | None


@dataclass(frozen=True)
class TopicOffsets:
    topic: str
    beginning: int
    end: int


async def probe_service(client: httpx.AsyncClient, name: str, url: str) -> ServiceProbe:
    """`/ready` says whether it can serve; `/metrics` carries its outbox backlog."""
    try:
        ready = await client.get(f"{url}/ready")
    except httpx.HTTPError as exc:
        return ServiceProbe(name, "down", {"http": type(exc).__name__}, None)
    try:
        body = ready.json()
        checks = {str(k): str(v) for k, v in dict(body.get("checks", {})).items()}
    except ValueError:
        checks = {}
    status = "ready" if ready.status_code == 200 else "not_ready"
    backlog: int | None = None
    try:
        metrics = await client.get(f"{url}/metrics")
        if metrics.status_code == 200:
            backlog = outbox_backlog(metrics.text)
    except httpx.HTTPError:
        pass
    return ServiceProbe(name, status, checks, backlog)


def outbox_backlog(exposition: str) -> int | None:
    """The sum of `paygate_outbox_pending` in a Prometheus text exposition (None: not exported)."""
    total: float | None = None
    for family in text_string_to_metric_families(exposition):
        if family.name == "paygate_outbox_pending":
            for sample in family.samples:
                total = (total or 0) + sample.value
    return int(total) if total is not None else None


class KafkaProbe:
    """Topic offsets and each consumer group's committed offsets, over one pair of clients."""

    def __init__(self, settings: ServiceSettings, timeout: float) -> None:
        self.settings = settings
        self.timeout = timeout
        self._admin: AIOKafkaAdminClient | None = None
        self._offsets: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        async with self._lock:
            if self._admin is None or self._offsets is None:
                bootstrap = self.settings.kafka_bootstrap_servers
                admin = AIOKafkaAdminClient(
                    bootstrap_servers=bootstrap, client_id="admin-service-health"
                )
                offsets = AIOKafkaConsumer(
                    bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
                )
                await asyncio.wait_for(admin.start(), self.timeout)
                await asyncio.wait_for(offsets.start(), self.timeout)
                self._admin, self._offsets = admin, offsets
            return self._admin, self._offsets

    async def _partitions(self, topic: str) -> list[TopicPartition]:
        _, offsets = await self._clients()
        parts = offsets.partitions_for_topic(topic)
        if not parts:
            await asyncio.wait_for(offsets.topics(), self.timeout)  # refresh metadata
            parts = offsets.partitions_for_topic(topic) or set()
        return [TopicPartition(topic, p) for p in sorted(parts)]

    async def topic_offsets(self, topic: str) -> TopicOffsets:
        _, offsets = await self._clients()
        partitions = await self._partitions(topic)
        if not partitions:
            return TopicOffsets(topic, 0, 0)
        begin = await asyncio.wait_for(offsets.beginning_offsets(partitions), self.timeout)
        end = await asyncio.wait_for(offsets.end_offsets(partitions), self.timeout)
        return TopicOffsets(topic, sum(begin.values()), sum(end.values()))

    async def lag(self, group: str, topic: str) -> int:
        """Messages on `topic` the group has not committed yet (all of them if it never did)."""
        admin, offsets = await self._clients()
        partitions = await self._partitions(topic)
        if not partitions:
            return 0
        committed = await asyncio.wait_for(
            admin.list_consumer_group_offsets(group, partitions=partitions), self.timeout
        )
        begin = await asyncio.wait_for(offsets.beginning_offsets(partitions), self.timeout)
        end = await asyncio.wait_for(offsets.end_offsets(partitions), self.timeout)
        lag = 0
        for tp in partitions:
            meta = committed.get(tp)
            position = meta.offset if meta is not None and meta.offset >= 0 else begin[tp]
            lag += max(0, end[tp] - position)
        return lag

    async def aclose(self) -> None:
        for client in (self._offsets, self._admin):
            if client is not None:
                try:
                    await client.stop() if isinstance(
                        client, AIOKafkaConsumer
                    ) else await client.close()
                except Exception:  # closing a half-broken client must not fail shutdown
                    log.debug("closing a Kafka client failed", exc_info=True)
        self._admin = self._offsets = None

    async def reset(self) -> None:
        """Drop the clients after a failure; the next probe reconnects."""
        await self.aclose()
