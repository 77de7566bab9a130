"""Test helpers for event flows on a real broker: read a topic, wait for a condition, migrate."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from alembic.migration import MigrationContext
from alembic.operations import Operations
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from paygate_common.events import EventEnvelope, PaymentEvent, PaymentStatus, new_event
from paygate_common.outbox import create_outbox_tables

# Tansu holds a JoinGroup for half the session timeout: a short one makes a test consumer's
# first assignment take ~1 s instead of ~5 s; a short fetch wait makes a paused-and-resumed
# partition (TransientError) refetch at once. Pass as `ConsumerRunner(consumer_options=...)`.
FAST_TEST_CONSUMER: dict[str, Any] = {
    "session_timeout_ms": 2000,
    "heartbeat_interval_ms": 300,
    "fetch_max_wait_ms": 100,
}


def payment_envelope(
    *,
    payment_id: uuid.UUID,
    user_id: uuid.UUID,
    status: PaymentStatus,
    amount: int,
    currency: str = "usd",
    provider: str = "stripe",
    order_id: uuid.UUID | None = None,
    **fields: Any,
) -> EventEnvelope:
    """A `payment.<status>` envelope as payment-service publishes it: keyed by the order id, or
    by the payment id for a payment without an order."""
    payload = PaymentEvent(
        payment_id=payment_id,
        order_id=order_id,
        user_id=user_id,
        status=status,
        amount=amount,
        currency=currency,
        provider=provider,
        **fields,
    )
    return new_event(payload, producer="payment-service", aggregate_id=str(order_id or payment_id))


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    expect: int,
    settle: float = 0.5,
    within: float = 10.0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every message on `topic` (no group): waits for `expect`, then `settle` s for extras."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        deadline = time.monotonic() + within
        quiet_until: float | None = None
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=100)
            for partition_records in batch.values():
                records.extend(partition_records)
            if len(records) >= expect and quiet_until is None:
                quiet_until = time.monotonic() + settle
            if quiet_until is not None and time.monotonic() >= quiet_until:
                break
    finally:
        await consumer.stop()
    return records


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Poll an async condition until it holds; AssertionError after `within` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def wait_for(
    predicate: Callable[[], Any],
    *,
    timeout: float = 20.0,  # noqa: ASYNC109  (a polling deadline)
    interval: float = 0.1,
) -> Any:
    """Poll `predicate` (sync or async) until it returns something truthy, and return that.

    Fails with the last value seen after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {value!r})")


def consumed(service: str, topic: str, outcome: str) -> float:
    """The `paygate_events_consumed_total` sample for one service, topic and outcome."""
    labels = {"service": service, "topic": topic, "outcome": outcome}
    return REGISTRY.get_sample_value("paygate_events_consumed_total", labels) or 0.0


async def create_schema_with_outbox(engine: AsyncEngine, schema: str) -> None:
    """Create `schema` and run `create_outbox_tables` in it, as a first migration would."""

    def migrate(sync_conn: Any) -> None:
        create_outbox_tables(Operations(MigrationContext.configure(sync_conn)))

    async with engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        await conn.execute(text(f'SET LOCAL search_path TO "{schema}"'))
        await conn.run_sync(migrate)
