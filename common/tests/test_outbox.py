"""The transactional outbox against real PostgreSQL and a real Kafka-protocol broker (Tansu)."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from paygate_common.db import unit_of_work
from paygate_common.events.envelope import EventEnvelope
from paygate_common.kafka import create_producer, headers_dict
from paygate_common.outbox import OutboxRelay, add_event
from paygate_devstack.events_testing import (
    consumed,
    eventually,
    read_topic,
)

if TYPE_CHECKING:
    from conftest import Spine

# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def service_name() -> str:
    return "outbox-test"


@pytest.fixture
async def topic(kafka_broker: Any) -> str:
    name = f"test.outbox.{secrets.token_hex(4)}"
    await kafka_broker.acreate_topics([name], partitions=3)
    return name


# --- publishing --------------------------------------------------------------------------------


async def test_event_added_in_a_committed_transaction_is_published_and_marked(
    spine: Spine, topic: str
) -> None:
    event = spine.envelope(order="o-1", amount=1250)
    async with unit_of_work(spine.sessionmaker) as session:
        await add_event(session, event, topic=topic)

    relay = spine.relay()
    assert await relay.publish_pending() == 1

    records = await read_topic(spine.bootstrap, topic, expect=1)
    assert len(records) == 1
    assert EventEnvelope.from_bytes(records[0].value) == event
    assert records[0].key == event.aggregate_id.encode()
    assert headers_dict(records[0].headers)["event_id"] == str(event.event_id)
    [row] = await spine.outbox_rows()
    assert (row.event_id, row.state, row.attempts) == (event.event_id, "published", 1)
    assert await relay.publish_pending() == 0


async def test_event_added_in_a_rolled_back_transaction_is_never_published(
    spine: Spine, topic: str
) -> None:
    with pytest.raises(RuntimeError):
        async with unit_of_work(spine.sessionmaker) as session:
            await add_event(session, spine.envelope(), topic=topic)
            raise RuntimeError("the state change failed")

    relay = spine.relay()
    assert await relay.publish_pending() == 0
    assert await spine.outbox_rows() == []
    assert await read_topic(spine.bootstrap, topic, expect=0, settle=0.5) == []


async def test_notify_wakes_the_relay_long_before_the_poll_interval(
    spine: Spine, topic: str
) -> None:
    relay = spine.relay(poll_interval=30)
    task = asyncio.create_task(relay.run())
    try:
        await eventually(lambda: _true(relay.listening))
        await asyncio.sleep(0.3)  # let the first pass finish: now only NOTIFY can wake it

        async with unit_of_work(spine.sessionmaker) as session:
            await add_event(session, spine.envelope(), topic=topic)
        committed = time.monotonic()

        async def published() -> bool:
            return [r.state for r in await spine.outbox_rows()] == ["published"]

        await eventually(published, within=5)
        assert time.monotonic() - committed < 1.0
    finally:
        await relay.stop()
        await asyncio.wait_for(task, 5)


async def test_rows_of_one_key_wait_while_an_older_row_of_that_key_is_pending(
    spine: Spine, topic: str
) -> None:
    first, second, other = (
        spine.envelope("order-1"),
        spine.envelope("order-1"),
        spine.envelope("order-2"),
    )
    async with unit_of_work(spine.sessionmaker) as session:
        for event in (first, second, other):
            await add_event(session, event, topic=topic)
    # `first` is in retry backoff, as after a failed publish
    async with spine.engine.begin() as conn:
        await conn.execute(
            text("UPDATE outbox SET available_at = now() + interval '1 hour' WHERE event_id = :e"),
            {"e": first.event_id},
        )

    relay = spine.relay()
    assert await relay.publish_pending() == 1
    states = {r.event_id: r.state for r in await spine.outbox_rows()}
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
    spine: Spine, topic: str
) -> None:
    event = spine.envelope()
    async with unit_of_work(spine.sessionmaker) as session:
        await add_event(session, event, topic=topic)

    with pytest.raises(RuntimeError, match="between publish and mark"):
        await CrashAfterPublish(
            engine=spine.engine, producer=spine.producer, service="t"
        ).publish_pending()
    assert [r.state for r in await spine.outbox_rows()] == ["pending"]

    # the restarted relay publishes it again: at-least-once
    assert await spine.relay().publish_pending() == 1
    records = await read_topic(spine.bootstrap, topic, expect=2)
    assert [EventEnvelope.from_bytes(r.value).event_id for r in records] == [event.event_id] * 2

    group = f"outbox-test-{secrets.token_hex(4)}"
    async with spine.running(spine.runner(topic, consumer_name=group)):
        await eventually(lambda: _true(consumed("outbox-test", topic, "duplicate") == 1), within=20)
    assert await spine.effects() == {event.event_id: 1}
    async with spine.engine.connect() as conn:
        inbox = (await conn.execute(text("SELECT consumer, event_id FROM inbox"))).all()
    assert [tuple(r) for r in inbox] == [(group, event.event_id)]


async def test_publish_failure_keeps_rows_pending_with_the_error_and_they_publish_later(
    spine: Spine, topic: str, kafka_broker: Any
) -> None:
    producer = create_producer(spine.settings, request_timeout_ms=2000, retry_backoff_ms=100)
    await producer.start()
    relay = spine.relay(
        producer,
        publish_timeout=1.0,
        backoff_base=0.2,
        max_backoff=0.5,
    )
    events = [spine.envelope() for _ in range(3)]
    try:
        async with unit_of_work(spine.sessionmaker) as session:
            for event in events:
                await add_event(session, event, topic=topic)
        kafka_broker.pause()
        try:
            assert await relay.publish_pending() == 0
        finally:
            kafka_broker.resume()
        rows = await spine.outbox_rows()
        assert [r.state for r in rows] == ["pending"] * 3
        assert all(r.attempts == 1 for r in rows)
        assert all("Timeout" in r.last_error for r in rows)

        async def all_published() -> bool:
            await relay.publish_pending()
            return {r.state for r in await spine.outbox_rows()} == {"published"}

        await eventually(all_published, within=20)
    finally:
        await producer.stop()
    records = await read_topic(spine.bootstrap, topic, expect=3)
    # at-least-once: the acks that timed out may have landed too, but nothing is lost
    assert {EventEnvelope.from_bytes(r.value).event_id for r in records} == {
        e.event_id for e in events
    }


async def test_a_producer_that_cannot_reach_kafka_leaves_rows_pending_with_backoff(
    spine: Spine, topic: str
) -> None:
    event = spine.envelope()
    async with unit_of_work(spine.sessionmaker) as session:
        await add_event(session, event, topic=topic)
    # a producer that was never started refuses every send
    dead = create_producer(
        spine.settings.model_copy(update={"kafka_bootstrap_servers": "127.0.0.1:1"})
    )
    relay = spine.relay(dead, backoff_base=60, publish_timeout=0.5)
    assert await relay.publish_pending() == 0
    assert await relay.publish_pending() == 0  # in backoff: not even attempted again
    [row] = await spine.outbox_rows()
    assert (row.state, row.attempts) == ("pending", 1)
    assert row.last_error

    async with spine.engine.begin() as conn:  # the backoff elapses
        await conn.execute(text("UPDATE outbox SET available_at = now()"))
    assert await spine.relay().publish_pending() == 1
    [row] = await spine.outbox_rows()
    assert (row.state, row.attempts, row.last_error) == ("published", 2, None)


async def test_two_relays_running_concurrently_publish_each_row_once(
    spine: Spine, topic: str
) -> None:
    events = [spine.envelope() for _ in range(300)]
    async with unit_of_work(spine.sessionmaker) as session:
        for event in events:
            await add_event(session, event, topic=topic)

    relays = [spine.relay(batch_size=25) for _ in range(2)]

    async def drain(relay: OutboxRelay) -> int:
        total = 0
        while (n := await relay.publish_pending()) > 0:
            total += n
        return total

    counts = await asyncio.gather(*(drain(r) for r in relays))
    assert sum(counts) == 300
    records = await read_topic(spine.bootstrap, topic, expect=300, settle=1.0)
    ids = [EventEnvelope.from_bytes(r.value).event_id for r in records]
    assert len(ids) == 300
    assert set(ids) == {e.event_id for e in events}


async def test_the_pending_gauge_counts_unpublished_rows(spine: Spine, topic: str) -> None:
    async with unit_of_work(spine.sessionmaker) as session:
        for _ in range(2):
            await add_event(session, spine.envelope(), topic=topic)
    relay = spine.relay(service="gauge-test")
    assert await relay.refresh_pending_metric() == 2
    assert REGISTRY.get_sample_value("paygate_outbox_pending", {"service": "gauge-test"}) == 2
    await relay.publish_pending()
    await relay.refresh_pending_metric()
    assert REGISTRY.get_sample_value("paygate_outbox_pending", {"service": "gauge-test"}) == 0


async def _true(value: bool) -> bool:
    return value
