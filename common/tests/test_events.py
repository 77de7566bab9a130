"""Event plumbing: Kafka headers, the outbox migration helpers and the eventing lifespan."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import httpx
from aiokafka import AIOKafkaProducer
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from paygate_common.app import create_service_app
from paygate_common.db import create_engine, new_metadata, unit_of_work
from paygate_common.eventing import ConsumerSpec, run_eventing, supervise
from paygate_common.events.envelope import EventEnvelope
from paygate_common.kafka import envelope_headers, headers_dict, kafka_headers
from paygate_common.outbox import add_event, drop_outbox_tables, outbox_tables
from paygate_common.settings import ServiceSettings
from paygate_devstack.events_testing import (
    FAST_TEST_CONSUMER,
    create_schema_with_outbox,
    eventually,
)


class _Settings(ServiceSettings):
    service_name: ClassVar[str] = "eventing-test"


def envelope(**payload: Any) -> EventEnvelope:
    return EventEnvelope(
        event_type="order.created",
        producer="eventing-test",
        aggregate_id="order-9",
        correlation_id="req-123",
        payload=payload,
    )


def test_envelope_headers_survive_the_round_trip_through_kafka_headers() -> None:
    event = envelope()
    raw = kafka_headers(event)
    assert all(isinstance(v, bytes) for _, v in raw)
    assert headers_dict(raw) == {
        "event_type": "order.created",
        "event_id": str(event.event_id),
        "correlation_id": "req-123",
        "x-request-id": "req-123",
    }
    assert envelope_headers(event.model_copy(update={"correlation_id": None})).keys() == {
        "event_type",
        "event_id",
    }


async def test_the_migration_helpers_create_exactly_the_tables_of_outbox_tables(
    postgres: Any,
) -> None:
    settings = _Settings(database_url=await postgres.acreate_database(), db_schema="svc")
    engine = create_engine(settings)
    try:
        await create_schema_with_outbox(engine, "svc")
        metadata = new_metadata()
        outbox_tables(metadata)

        def check(sync_conn: Any) -> tuple[list[Any], list[str]]:
            ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True})
            diff = compare_metadata(ctx, metadata)
            indexes = sync_conn.execute(
                text("SELECT indexdef FROM pg_indexes WHERE tablename = 'outbox'")
            ).scalars()
            return diff, list(indexes)

        async with engine.connect() as conn:
            diff, indexes = await conn.run_sync(check)
        assert diff == []
        assert any("ix_outbox_pending " in i and "WHERE (state = 'pending'" in i for i in indexes)

        def downgrade(sync_conn: Any) -> None:
            drop_outbox_tables(Operations(MigrationContext.configure(sync_conn)))

        async with engine.begin() as conn:
            await conn.run_sync(downgrade)
            left = await conn.execute(
                text("SELECT count(*) FROM pg_tables WHERE schemaname = 'svc'")
            )
            assert left.scalar_one() == 0
    finally:
        await engine.dispose()


async def test_supervise_restarts_a_crashed_loop_until_stopped() -> None:
    stopping = asyncio.Event()
    runs = 0

    async def loop() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise RuntimeError("boom")
        stopping.set()

    await asyncio.wait_for(supervise("flaky", loop, stopping, max_backoff=0.01), 5)
    assert runs == 3


async def test_run_eventing_wires_producer_relay_consumers_and_readiness(
    postgres: Any, kafka_broker: Any
) -> None:
    topic = f"test.eventing.{secrets.token_hex(4)}"
    await kafka_broker.acreate_topics([topic, f"{topic}.dlq"], partitions=1)
    settings = _Settings(
        database_url=await postgres.acreate_database(),
        db_schema="svc",
        kafka_bootstrap_servers=kafka_broker.bootstrap,
        log_json=False,
    )
    setup_engine = create_engine(settings)
    await create_schema_with_outbox(setup_engine, "svc")
    async with setup_engine.begin() as conn:
        await conn.execute(text("CREATE TABLE svc.effects (event_id uuid NOT NULL)"))
    await setup_engine.dispose()

    async def record_effect(session: AsyncSession, event: EventEnvelope) -> None:
        await session.execute(text("INSERT INTO effects VALUES (:e)"), {"e": event.event_id})

    spec = ConsumerSpec(
        name="eventing-test.orders",
        topics=[topic],
        handler=record_effect,
        dlq_topic=f"{topic}.dlq",
        options={"consumer_options": FAST_TEST_CONSUMER, "backoff_base": 0.01},
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with run_eventing(app, consumers=[spec], relay_options={"poll_interval": 30}):
            yield

    app = create_service_app(settings, title="t", lifespan=lifespan, use_redis=False)
    event = envelope(amount=500)
    async with LifespanManager(app) as manager:
        assert isinstance(app.state.producer, AIOKafkaProducer)
        transport = httpx.ASGITransport(manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            ready = await client.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"]["kafka"] == "ok"

        # a request's unit of work writes the event; relay → Kafka → consumer → handler
        async with unit_of_work(app.state.sessionmaker) as session:
            await add_event(session, event, topic=topic)

        async def applied() -> bool:
            async with app.state.engine.connect() as conn:
                rows = await conn.execute(text("SELECT event_id FROM effects"))
                return list(rows.scalars()) == [event.event_id]

        await eventually(applied, within=20)
        tasks = app.state.eventing.tasks
    assert all(t.done() for t in tasks)
