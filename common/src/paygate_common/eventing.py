"""Service lifespan helper: the Kafka producer, the outbox relay and supervised consumers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from paygate_common.app import add_readiness_check
from paygate_common.consumer import BatchHandler, ConsumerRunner, Handler
from paygate_common.kafka import create_producer, kafka_ready, start_with_retry
from paygate_common.outbox import OutboxRelay

log = logging.getLogger("paygate.eventing")


@dataclass(frozen=True)
class ConsumerSpec:
    """One consumer of a service: its group/inbox name, topics, handler and dead-letter topic.

    `options` go to `ConsumerRunner` as keyword arguments (batch_size, backoff_base, ...).
    `handler` applies one event; a `batch_handler` (optional) applies a whole consumed batch in
    one go and replaces it (see `ConsumerRunner`).
    """

    name: str
    topics: Sequence[str]
    handler: Handler | None
    dlq_topic: str
    max_attempts: int = 5
    options: dict[str, Any] = field(default_factory=dict)
    batch_handler: BatchHandler | None = None


@dataclass
class Eventing:
    """What `run_eventing` started; also stored as `app.state.eventing`."""

    producer: AIOKafkaProducer
    relay: OutboxRelay | None
    consumers: list[ConsumerRunner]
    tasks: list[asyncio.Task[None]]


async def supervise(
    name: str,
    loop: Callable[[], Awaitable[None]],
    stopping: asyncio.Event,
    *,
    max_backoff: float = 30.0,
) -> None:
    """Run `loop` until `stopping` is set, restarting it with backoff whenever it crashes."""
    failures = 0
    while not stopping.is_set():
        try:
            await loop()
        except asyncio.CancelledError:
            raise
        except Exception:
            failures += 1
            log.exception("%s crashed (%d in a row); restarting", name, failures)
        else:
            if stopping.is_set():
                return
            failures += 1
            log.error("%s returned unexpectedly; restarting", name)
        delay = min(max_backoff, 0.5 * 2 ** min(failures, 10))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), delay)


@asynccontextmanager
async def run_eventing(
    app: FastAPI,
    *,
    relay: bool = True,
    consumers: Sequence[ConsumerSpec] = (),
    relay_options: dict[str, Any] | None = None,
    producer_options: dict[str, Any] | None = None,
    start_attempts: int = 30,
    start_delay: float = 1.0,
    stop_timeout: float = 10.0,
) -> AsyncIterator[Eventing]:
    """Kafka for a service's lifespan; needs `app.state.settings`, `.engine`, `.sessionmaker`.

    Starts the producer (waiting for the broker), stores it as `app.state.producer`, runs the
    outbox relay and each consumer as supervised background tasks, registers the `kafka`
    readiness check, and on exit stops the loops and flushes the producer.
    """
    settings = app.state.settings
    producer = create_producer(settings, **(producer_options or {}))
    await start_with_retry(producer, start_attempts, start_delay)
    app.state.producer = producer
    add_readiness_check(app, "kafka", lambda: kafka_ready(producer))

    stopping = asyncio.Event()
    outbox_relay: OutboxRelay | None = None
    if relay:
        outbox_relay = OutboxRelay(
            engine=app.state.engine,
            producer=producer,
            service=settings.service_name,
            **(relay_options or {}),
        )
    runners = [
        ConsumerRunner(
            settings=settings,
            consumer_name=spec.name,
            topics=spec.topics,
            handler=spec.handler,
            batch_handler=spec.batch_handler,
            sessionmaker=app.state.sessionmaker,
            producer=producer,
            dlq_topic=spec.dlq_topic,
            max_attempts=spec.max_attempts,
            start_attempts=start_attempts,
            start_delay=start_delay,
            **spec.options,
        )
        for spec in consumers
    ]
    tasks: list[asyncio.Task[None]] = []
    if outbox_relay is not None:
        tasks.append(
            asyncio.create_task(
                supervise(f"{settings.service_name} outbox relay", outbox_relay.run, stopping),
                name=f"{settings.service_name}-outbox-relay",
            )
        )
    for runner in runners:
        tasks.append(
            asyncio.create_task(
                supervise(f"consumer {runner.consumer_name}", runner.run, stopping),
                name=f"consumer-{runner.consumer_name}",
            )
        )
    eventing = Eventing(producer=producer, relay=outbox_relay, consumers=runners, tasks=tasks)
    app.state.eventing = eventing
    try:
        yield eventing
    finally:
        stopping.set()
        if outbox_relay is not None:
            await outbox_relay.stop()
        for runner in runners:
            await runner.stop()
        if tasks:
            _, still_running = await asyncio.wait(tasks, timeout=stop_timeout)
            for task in still_running:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.stop(), stop_timeout)
