"""Fixtures the shared library's outbox, consumer and worker tests share: a service schema with
outbox/inbox tables on real PostgreSQL, its session factory, and a Kafka producer.

A module names the service its metrics are counted under with a `service_name` fixture.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from paygate_common.db import create_engine, create_sessionmaker
from paygate_common.kafka import create_producer
from paygate_common.settings import ServiceSettings
from paygate_devstack.events_testing import create_schema_with_outbox


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
