"""Fixtures: audit-service in process (ASGITransport + lifespan) on real PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from audit_service.main import create_app
from audit_service.settings import Settings
from paygate_common.events import EventEnvelope
from paygate_devstack.events_testing import FAST_TEST_CONSUMER, wait_for
from paygate_devstack.testkit import InProcessService, TokenMint, app_client, migrated_database


def superuser_engine(database_url: str) -> AsyncEngine:
    """The connecting user itself (a superuser here), not the service's writer role."""
    return create_async_engine(
        database_url, connect_args={"server_settings": {"search_path": "audit"}}
    )


@dataclass
class AuditService(InProcessService[Settings]):
    """The running app, an HTTP client to it, a producer, and a superuser engine to tamper with."""

    producer: AIOKafkaProducer
    superuser: AsyncEngine

    def auth(self, role: str = "admin", user_id: uuid.UUID | None = None) -> dict[str, str]:
        return self.mint.auth(user_id, role)

    async def get(self, path: str, role: str = "admin", **params: Any) -> httpx.Response:
        return await self.http.get(path, params=params or None, headers=self.auth(role))

    async def publish(self, topic: str, envelope: EventEnvelope) -> EventEnvelope:
        await self.producer.send_and_wait(
            topic, envelope.to_bytes(), key=envelope.aggregate_id.encode()
        )
        return envelope

    async def sql(self, query: str, **params: Any) -> list[Any]:
        """As the superuser (triggers still on unless the statement says otherwise)."""
        async with self.superuser.begin() as conn:
            result = await conn.execute(text(query), params)
            return list(result.all()) if result.returns_rows else []

    async def recorded(self, *event_ids: uuid.UUID, timeout: float = 30) -> list[Any]:
        """Wait until every event has its audit record; the records in chain order."""
        ids = list(event_ids)

        async def rows() -> list[Any] | None:
            found = await self.sql(
                "SELECT * FROM audit_records WHERE event_id = ANY(:ids) ORDER BY seq", ids=ids
            )
            return found if len(found) == len(ids) else None

        result: list[Any] = await wait_for(rows, timeout=timeout)
        return result


@asynccontextmanager
async def running_audit_service(
    postgres: Any,
    kafka_broker: Any,
    mint: TokenMint,
    *,
    database_url: str | None = None,
    group: str | None = None,
    **overrides: Any,
) -> AsyncIterator[AuditService]:
    """`database_url` and `group` given: a second replica of an already running service."""
    database_url = database_url or await migrated_database(postgres, "audit")
    # A fresh consumer group per test: the shared broker keeps other tests' offsets.
    group = group or f"audit-test-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka_broker.bootstrap,
        environment="test",
        log_json=False,
        **overrides,
    )
    app = create_app(settings)
    mint.trust(app)
    app.state.consumer_options = {"group_id": group, **FAST_TEST_CONSUMER}
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    await producer.start()
    superuser = superuser_engine(database_url)
    try:
        async with app_client(app) as (_, http):
            for consumer in app.state.eventing.consumers:
                await asyncio.wait_for(consumer.started.wait(), 30)
            yield AuditService(app, http, mint, producer, superuser)
    finally:
        await producer.stop()
        await superuser.dispose()


@pytest.fixture(scope="session")
def start_audit_service(
    postgres: Any, kafka_broker: Any, token_mint: TokenMint
) -> Callable[..., Any]:
    """`async with start_audit_service(**settings_overrides) as svc:` on a fresh database."""

    def start(**overrides: Any) -> Any:
        return running_audit_service(postgres, kafka_broker, token_mint, **overrides)

    return start


@pytest.fixture(scope="session")
def migrated_audit_database(postgres: Any) -> Callable[[], Any]:
    """`await migrated_audit_database()` → the URL of a fresh, migrated audit database."""

    def make() -> Any:
        return migrated_database(postgres, "audit")

    return make
