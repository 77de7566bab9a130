"""The transactional outbox against real PostgreSQL and a real Kafka-protocol broker (Tansu)."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from paygate_common.consumer import ConsumerRunner
from paygate_common.db import unit_of_work
from paygate_common.events.envelope import EventEnvelope
from paygate_common.kafka import create_producer, headers_dict
from paygate_common.outbox import OutboxRelay, add_event
from paygate_common.settings import ServiceSettings
from paygate_devstack.events_testing import (
    FAST_TEST_CONSUMER,
    consumed,
    eventually,
    read_topic,
)

# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def service_name() -> str:
    return "outbox-test"


@pytest.fixture
async def topic(kafka_broker: Any) -> str:
    name = f"test.outbox.{secrets.token_hex(4)}"
    await kafka_broker.acreate_topics([name], partitions=3)
    return name


def envelope(aggregate_id: str | None = None, **payload: Any) -> EventEnvelope:
    return EventEnvelope(
        event_type="test.happened",
        producer="outbox-test",
        aggregate_id=aggregate_id or str(uuid.uuid4()),
        payload=payload,
    )


async def outbox_rows(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        result = await conn.execute(
            text(
                "SELECT event_id, state, attempts, last_error, available_at FROM outbox ORDER BY id"
            )
        )
        return list(result.all())


# --- publishing --------------------------------------------------------------------------------


async def test_event_added_in_a_committed_transaction_is_published_and_marked(
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    topic: str,
    kafka_broker: Any,
) -> None:
    event = envelope(order="o-1", amount=1250)
    async with unit_of_work(sessionmaker) as session:
        await add_event(session, event, topic=topic)

    relay = OutboxRelay(engine=engine, producer=producer, service="outbox-test")
    assert await relay.publish_pending() == 1

    records = await read_topic(kafka_broker.bootstrap, topic, expect=1)
    assert len(records) == 1
    assert EventEnvelope.from_bytes(records[0].value) == event
    assert records[0].key == event.aggregate_id.encode()
    assert headers_dict(records[0].headers)["event_id"] == str(event.event_id)
    [row] = await outbox_rows(engine)
    assert (row.event_id, row.state, row.attempts) == (event.event_id, "published", 1)
    assert await relay.publish_pending() == 0


async def test_event_added_in_a_rolled_back_transaction_is_never_published(
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    topic: str,
    kafka_broker: Any,
) -> None:
    with pytest.raises(RuntimeError):
        async with unit_of_work(sessionmaker) as session:
            await add_event(session, envelope(), topic=topic)
            raise RuntimeError("the state change failed")

    relay = OutboxRelay(engine=engine, producer=producer, service="outbox-test")
    assert await relay.publish_pending() == 0
    assert await outbox_rows(engine) == []
    assert await read_topic(kafka_broker.bootstrap, topic, expect=0, settle=0.5) == []


async def test_notify_wakes_the_relay_long_before_the_poll_interval(
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    topic: str,
) -> None:
    relay = OutboxRelay(engine=engine, producer=producer, service="outbox-test", poll_interval=30)
    task = asyncio.create_task(relay.run())
    try:
        await eventually(lambda: _true(relay.listening))
        await asyncio.sleep(0.3)  # let the first pass finish: now only NOTIFY can wake it

        async with unit_of_work(sessionmaker) as session:
            await add_event(session, envelope(), topic=topic)
        committed = time.monotonic()

        async def published() -> bool:
            return [r.state for r in await outbox_rows(engine)] == ["published"]

        await eventually(published, within=5)
        assert time.monotonic() - committed < 1.0
    finally:
        await relay.stop()
        await asyncio.wait_for(task, 5)


async def test_rows_of_one_key_wait_while_an_older_row_of_that_key_is_pending(
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    topic: str,
) -> None:
    first, second, other = envelope("order-1"), envelope("order-1"), envelope("order-2")
    async with unit_of_work(sessionmaker) as session:
        for event in (first, second, other):
            await add_event(session, event, topic=topic)
    # `first` is in retry backoff, as after a failed publish
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE outbox SET available_at = now() + interval '1 hour' WHERE event_id = :e"),
            {"e": first.event_id},
        )

    relay = OutboxRelay(engine=engine, producer=producer, service="outbox-test")
    assert await relay.publish_pending() == 1
    states = {r.event_id: r.state for r in await outbox_rows(engine)}
    assert states == {
        first.event_id: "pending",
        second.event_id: "pending",
        other.event_id: "published",
    }


# --- failures ----------------------------------------------------------------------------------


class CrashAfterPublish(OutboxRelay):
    """Kafka has the messages, then the process dies before the UPDATE commits."""

    async def _mark(self, conn: AsyncConnection, published: Any, failures: Any) -> None:
        raise RuntimeError("relay crashed between publish and mark")


async def test_relay_crash_between_publish_and_mark_republishes_and_the_inbox_applies_it_once(
    settings: ServiceSettings,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    topic: str,
    kafka_broker: Any,
) -> None:
    event = envelope()
    async with unit_of_work(sessionmaker) as session:
        await add_event(session, event, topic=topic)

    with pytest.raises(RuntimeError, match="between publish and mark"):
        await CrashAfterPublish(engine=engine, producer=producer, service="t").publish_pending()
    assert [r.state for r in await outbox_rows(engine)] == ["pending"]

    # the restarted relay publishes it again: at-least-once
    assert await OutboxRelay(engine=engine, producer=producer, service="t").publish_pending() == 1
    records = await read_topic(kafka_broker.bootstrap, topic, expect=2)
    assert [EventEnvelope.from_bytes(r.value).event_id for r in records] == [event.event_id] * 2

    async def record_effect(session: AsyncSession, env: EventEnvelope) -> None:
        await session.execute(text("INSERT INTO effects VALUES (:e)"), {"e": env.event_id})

    group = f"outbox-test-{secrets.token_hex(4)}"
    runner = ConsumerRunner(
        settings=settings,
        consumer_name=group,
        topics=[topic],
        handler=record_effect,
        sessionmaker=sessionmaker,
        producer=producer,
        dlq_topic=f"{topic}.dlq",
        consumer_options=FAST_TEST_CONSUMER,
    )
    task = asyncio.create_task(runner.run())
    try:
        await eventually(lambda: _true(consumed("outbox-test", topic, "duplicate") == 1), within=20)
    finally:
        await runner.stop()
        await asyncio.wait_for(task, 10)
    async with engine.connect() as conn:
        effects = (await conn.execute(text("SELECT count(*) FROM effects"))).scalar_one()
        inbox = (await conn.execute(text("SELECT consumer, event_id FROM inbox"))).all()
    assert effects == 1
    assert [tuple(r) for r in inbox] == [(group, event.event_id)]


async def test_publish_failure_keeps_rows_pending_with_the_error_and_they_publish_later(
    settings: ServiceSettings,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    topic: str,
    kafka_broker: Any,
) -> None:
    producer = create_producer(settings, request_timeout_ms=2000, retry_backoff_ms=100)
    await producer.start()
    relay = OutboxRelay(
        engine=engine,
        producer=producer,
        service="outbox-test",
        publish_timeout=1.0,
        backoff_base=0.2,
        max_backoff=0.5,
    )
    events = [envelope() for _ in range(3)]
    try:
        async with unit_of_work(sessionmaker) as session:
            for event in events:
                await add_event(session, event, topic=topic)
        kafka_broker.pause()
        try:
            assert await relay.publish_pending() == 0
        finally:
            kafka_broker.resume()
        rows = await outbox_rows(engine)
        assert [r.state for r in rows] == ["pending"] * 3
        assert all(r.attempts == 1 for r in rows)
        assert all("Timeout" in r.last_error for r in rows)

        async def all_published() -> bool:
            await relay.publish_pending()
            return {r.state for r in await outbox_rows(engine)} == {"published"}

        await eventually(all_published, within=20)
    finally:
        await producer.stop()
    records = await read_topic(kafka_broker.bootstrap, topic, expect=3)
    # at-least-once: the acks that timed out may have landed too, but nothing is lost
    assert {EventEnvelope.from_bytes(r.value).event_id for r in records} == {
        e.event_id for e in events
    }


async def test_a_producer_that_cannot_reach_kafka_leaves_rows_pending_with_backoff(
    settings: ServiceSettings,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    topic: str,
) -> None:
    event = envelope()
    async with unit_of_work(sessionmaker) as session:
        await add_event(session, event, topic=topic)
    # a producer that was never started refuses every send
    dead = create_producer(settings.model_copy(update={"kafka_bootstrap_servers": "127.0.0.1:1"}))
    relay = OutboxRelay(
        engine=engine, producer=dead, service="t", backoff_base=60, publish_timeout=0.5
    )
    assert await relay.publish_pending() == 0
    assert await relay.publish_pending() == 0  # in backoff: not even attempted again
    [row] = await outbox_rows(engine)
    assert (row.state, row.attempts) == ("pending", 1)
    assert row.last_error

    async with engine.begin() as conn:  # the backoff elapses
        await conn.execute(text("UPDATE outbox SET available_at = now()"))
    assert await OutboxRelay(engine=engine, producer=producer, service="t").publish_pending() == 1
    [row] = await outbox_rows(engine)
    assert (row.state, row.attempts, row.last_error) == ("published", 2, None)


async def test_two_relays_running_concurrently_publish_each_row_once(
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    topic: str,
    kafka_broker: Any,
) -> None:
    events = [envelope() for _ in range(300)]
    async with unit_of_work(sessionmaker) as session:
        for event in events:
            await add_event(session, event, topic=topic)

    relays = [
        OutboxRelay(engine=engine, producer=producer, service="t", batch_size=25) for _ in range(2)
    ]

    async def drain(relay: OutboxRelay) -> int:
        total = 0
        while (n := await relay.publish_pending()) > 0:
            total += n
        return total

    counts = await asyncio.gather(*(drain(r) for r in relays))
    assert sum(counts) == 300
    records = await read_topic(kafka_broker.bootstrap, topic, expect=300, settle=1.0)
    ids = [EventEnvelope.from_bytes(r.value).event_id for r in records]
    assert len(ids) == 300
    assert set(ids) == {e.event_id for e in events}


async def test_the_pending_gauge_counts_unpublished_rows(
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    topic: str,
) -> None:
    async with unit_of_work(sessionmaker) as session:
        for _ in range(2):
            await add_event(session, envelope(), topic=topic)
    relay = OutboxRelay(engine=engine, producer=producer, service="gauge-test")
    assert await relay.refresh_pending_metric() == 2
    assert REGISTRY.get_sample_value("paygate_outbox_pending", {"service": "gauge-test"}) == 2
    await relay.publish_pending()
    await relay.refresh_pending_metric()
    assert REGISTRY.get_sample_value("paygate_outbox_pending", {"service": "gauge-test"}) == 0


async def _true(value: bool) -> bool:
    return value
