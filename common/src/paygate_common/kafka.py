"""aiokafka producer/consumer factories, envelope headers, start-up retry and the readiness probe."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.abc import ConsumerRebalanceListener

from paygate_common.events.envelope import EventEnvelope
from paygate_common.logging import REQUEST_ID_HEADER
from paygate_common.settings import ServiceSettings

log = logging.getLogger("paygate.kafka")

# Header names carried by every event message; consumers can route or log without parsing.
HEADER_EVENT_TYPE = "event_type"
HEADER_EVENT_ID = "event_id"
HEADER_CORRELATION_ID = "correlation_id"
HEADER_REQUEST_ID = REQUEST_ID_HEADER.lower()

KafkaHeaders = list[tuple[str, bytes]]


def create_producer(settings: ServiceSettings, **overrides: Any) -> AIOKafkaProducer:
    """A producer that waits for all in-sync replicas and sends without lingering (by default).

    Idempotence follows `settings.kafka_enable_idempotence`: Tansu (the local broker) has no
    InitProducerId, Apache Kafka should run with it on. Not started: use `start_with_retry`.
    """
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "client_id": settings.kafka_client_id or settings.service_name,
        "acks": "all",
        "enable_idempotence": settings.kafka_enable_idempotence,
        "linger_ms": settings.kafka_linger_ms,
        "request_timeout_ms": 15_000,
        "retry_backoff_ms": 200,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def create_consumer(
    settings: ServiceSettings,
    group_id: str,
    topics: Sequence[str],
    *,
    listener: ConsumerRebalanceListener | None = None,
    **overrides: Any,
) -> AIOKafkaConsumer:
    """A group consumer with manual offset commits, reading from the start of unseen partitions."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "client_id": settings.kafka_client_id or settings.service_name,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        # aiokafka's default is 500 ms, and Tansu holds an empty fetch that long: see settings.
        "fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms,
        "request_timeout_ms": 15_000,
        "retry_backoff_ms": 200,
    }
    options.update(overrides)
    consumer = AIOKafkaConsumer(**options)
    consumer.subscribe(list(topics), listener=listener)
    return consumer


def envelope_headers(envelope: EventEnvelope) -> dict[str, str]:
    """The headers an envelope travels with, as text (stored like this in the outbox)."""
    headers = {
        HEADER_EVENT_TYPE: envelope.event_type,
        HEADER_EVENT_ID: str(envelope.event_id),
    }
    if envelope.correlation_id:
        headers[HEADER_CORRELATION_ID] = envelope.correlation_id
        headers[HEADER_REQUEST_ID] = envelope.correlation_id
    return headers


def to_kafka_headers(headers: Mapping[str, str]) -> KafkaHeaders:
    return [(name, value.encode()) for name, value in headers.items()]


def kafka_headers(envelope: EventEnvelope) -> KafkaHeaders:
    """Envelope → the `headers=` argument of `AIOKafkaProducer.send`."""
    return to_kafka_headers(envelope_headers(envelope))


def headers_dict(headers: Iterable[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """Kafka record headers → `{name: text}` (the last value wins for a repeated name)."""
    result: dict[str, str] = {}
    for name, value in headers or ():
        result[name] = value.decode("utf-8", "replace") if value is not None else ""
    return result


class _Startable(Protocol):
    async def start(self) -> None: ...


async def start_with_retry(client: _Startable, attempts: int = 30, delay: float = 1.0) -> None:
    """Start a producer or consumer, waiting for a broker that comes up after the service."""
    for attempt in range(1, attempts + 1):
        try:
            await client.start()
            return
        except Exception as exc:  # KafkaConnectionError, timeouts, DNS errors while booting
            if attempt >= attempts:
                raise
            log.warning(
                "kafka not reachable (attempt %d/%d): %s: %s",
                attempt,
                attempts,
                type(exc).__name__,
                exc,
            )
            await asyncio.sleep(delay)


async def kafka_ready(producer: AIOKafkaProducer, wait_seconds: float = 2.0) -> None:
    """Readiness probe: raises unless a broker answers a metadata request within `wait_seconds`."""
    await asyncio.wait_for(producer.client.fetch_all_metadata(), wait_seconds)
