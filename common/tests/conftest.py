"""Fixtures the shared library's outbox, consumer and worker tests share: a service schema with
outbox/inbox tables on real PostgreSQL, its session factory, a Kafka producer, and `spine`.

A module names the service its metrics are counted under with a `service_name` fixture.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from paygate_common.consumer import ConsumerRunner
from paygate_common.db import create_engine, create_sessionmaker
from paygate_common.events.envelope import EventEnvelope
from paygate_common.kafka import create_producer, kafka_headers
from paygate_common.outbox import OutboxRelay
from paygate_common.settings import ServiceSettings
from paygate_devstack.events_testing import FAST_TEST_CONSUMER, create_schema_with_outbox


@pytest.fixture
def service_name() -> str:
    return "common-test"


@pytest.fixture(scope="module")
async def database_url(postgres: Any) -> str:
    return str(await postgres.acreate_database())


@pytest.fixture
async def settings(database_url: str, kafka_broker: Any, service_name: str) -> ServiceSettings:
    class _Settings(ServiceSettings):
        pass

    _Settings.service_name = service_name  # type: ignore[misc]
    return _Settings(
        database_url=database_url,
        db_schema=f"svc_{secrets.token_hex(4)}",
        kafka_bootstrap_servers=kafka_broker.bootstrap,
        db_pool_size=4,
    )


@pytest.fixture
async def engine(settings: ServiceSettings) -> AsyncIterator[AsyncEngine]:
    """A service schema migrated with `create_outbox_tables`, plus a side-effect table."""
    engine = create_engine(settings)
    await create_schema_with_outbox(engine, settings.db_schema)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE effects (event_id uuid NOT NULL)"))
    yield engine
    await engine.dispose()


@pytest.fixture
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


@pytest.fixture
async def producer(settings: ServiceSettings) -> AsyncIterator[AIOKafkaProducer]:
    producer = create_producer(settings, request_timeout_ms=3000)
    await producer.start()
    yield producer
    await producer.stop()


async def record_effect(session: AsyncSession, event: EventEnvelope) -> None:
    """The test handlers' side effect: one `effects` row per application."""
    await session.execute(text("INSERT INTO effects VALUES (:e)"), {"e": event.event_id})


@dataclass
class Spine:
    """One service's eventing parts on the real database and broker, with the tests' helpers."""

    settings: ServiceSettings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    producer: AIOKafkaProducer
    bootstrap: str
    record_effect = staticmethod(record_effect)

    @property
    def service(self) -> str:
        return self.settings.service_name

    def envelope(self, aggregate_id: str | None = None, **payload: Any) -> EventEnvelope:
        return EventEnvelope(
            event_type="test.happened",
            producer=self.service,
            aggregate_id=aggregate_id or str(uuid.uuid4()),
            payload=payload,
        )

    async def produce(self, topic: str, *events: EventEnvelope) -> None:
        for event in events:
            await self.producer.send_and_wait(
                topic,
                event.to_bytes(),
                key=event.aggregate_id.encode(),
                headers=kafka_headers(event),
            )

    async def effects(self) -> Counter[uuid.UUID]:
        """How many times each event's handler effect was committed."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(text("SELECT event_id FROM effects"))).scalars().all()
        return Counter(rows)

    async def outbox_rows(self) -> list[Any]:
        async with self.engine.connect() as conn:
            result = await conn.execute(
                text(
                    "SELECT event_id, state, attempts, last_error, available_at "
                    "FROM outbox ORDER BY id"
                )
            )
            return list(result.all())

    def relay(self, producer: AIOKafkaProducer | None = None, **options: Any) -> OutboxRelay:
        """An outbox relay of this schema (through `producer`, by default the started one)."""
        options.setdefault("service", self.service)
        return OutboxRelay(engine=self.engine, producer=producer or self.producer, **options)

    def runner(
        self,
        topic: str,
        handler: Callable[[AsyncSession, EventEnvelope], Awaitable[None]] | None = record_effect,
        **options: Any,
    ) -> ConsumerRunner:
        """A runner of `topic` (dead letters to `<topic>.dlq`) with test-speed backoff and fetch."""
        return ConsumerRunner(
            settings=self.settings,
            consumer_name=options.pop("consumer_name", f"{self.service}.{topic}"),
            topics=[topic],
            handler=handler,
            sessionmaker=self.sessionmaker,
            producer=self.producer,
            dlq_topic=options.pop("dlq_topic", f"{topic}.dlq"),
            backoff_base=options.pop("backoff_base", 0.01),
            consumer_options={**FAST_TEST_CONSUMER, **options.pop("consumer_options", {})},
            **options,
        )

    @asynccontextmanager
    async def running(self, runner: ConsumerRunner) -> AsyncIterator[ConsumerRunner]:
        """The runner in a background task, stopped (and awaited) at the end of the block."""
        task = asyncio.create_task(runner.run())
        try:
            yield runner
        finally:
            await runner.stop()
            await asyncio.wait_for(task, 10)


@pytest.fixture
def spine(
    settings: ServiceSettings,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    kafka_broker: Any,
) -> Spine:
    return Spine(settings, engine, sessionmaker, producer, kafka_broker.bootstrap)
