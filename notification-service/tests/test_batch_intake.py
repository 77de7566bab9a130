"""The intake's batch handler: one insert per table per batch, the same rows as event by event."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from notification_service.events.payment_events import payment_event_consumer
from paygate_common.db import unit_of_work
from paygate_common.events import EventEnvelope
from paygate_devstack.consumer_testing import BatchFeeder

pytestmark = pytest.mark.timeout(90)


def feeder(app: FastAPI, producer: Any = None, *, batched: bool = True) -> BatchFeeder:
    """The service's own consumer spec on the real runner, fed batches without Kafka."""
    settings = app.state.settings
    return BatchFeeder(
        payment_event_consumer(settings),
        settings=settings,
        sessionmaker=app.state.sessionmaker,
        producer=producer,
        batched=batched,
        max_attempts=1,
    )


async def queued(app: FastAPI, event_ids: list[uuid.UUID]) -> dict[str, list[Any]]:
    """What the intake wrote for these events, without ids and clocks."""
    async with unit_of_work(app.state.sessionmaker) as session:
        notifications = await session.execute(
            text(
                "SELECT event_id, channel::text, user_id, event_type, subject, order_id, payment_id "
                "FROM notifications WHERE event_id = ANY(:ids)"
            ),
            {"ids": event_ids},
        )
        deliveries = await session.execute(
            text(
                # not the status: the service's sender may have delivered a row already
                "SELECT event_id, endpoint_id, user_id, event_type, body "
                "FROM webhook_deliveries WHERE event_id = ANY(:ids)"
            ),
            {"ids": event_ids},
        )
        return {"notifications": list(notifications.all()), "deliveries": list(deliveries.all())}


def renumbered(rows: dict[str, list[Any]], index: dict[uuid.UUID, int]) -> dict[str, list[Any]]:
    """The rows with each event id replaced by its position in the batch: comparable."""
    return {
        table: sorted((index[row[0]], *row[1:]) for row in found) for table, found in rows.items()
    }


async def merchants(
    client: httpx.AsyncClient, auth_headers: Any, stand_in: Any, webhook_receiver: Any
) -> dict[str, uuid.UUID]:
    """Customers who are merchants too: their preferences and webhook endpoints differ."""
    users = {name: stand_in.add_user()[0] for name in ("defaults", "sms_only", "refunds_only")}
    await client.put(
        "/notifications/preferences",
        json={"sms": True, "email": False},
        headers=auth_headers(users["sms_only"]),
    )
    for name, extra in (("defaults", {}), ("refunds_only", {"enabled_events": ["refund.*"]})):
        _, url = webhook_receiver.endpoint()
        put = await client.put(
            "/webhooks/settings", json={"url": url, **extra}, headers=auth_headers(users[name])
        )
        assert put.status_code == 200, put.text
    return users


async def test_a_batch_queues_exactly_what_event_by_event_queues(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth_headers: Any,
    payments: Any,
    stand_in: Any,
    webhook_receiver: Any,
) -> None:
    users = await merchants(client, auth_headers, stand_in, webhook_receiver)
    batch = [
        payments.build(user, status)
        for user in users.values()
        for status in ("succeeded", "failed", "pending")
    ]
    results = []
    for batched in (True, False):
        # The same events under fresh ids for each path (the intake is keyed by event id).
        events = [e.model_copy(update={"event_id": uuid.uuid4()}) for e in batch]
        consumer = feeder(app, batched=batched)
        await consumer.apply(events[:1])  # in the inbox before the batch
        await consumer.apply([*events, events[3], events[0]])  # and two duplicates within it
        assert consumer.fallbacks == 0
        index = {e.event_id: i for i, e in enumerate(events)}
        results.append(renumbered(await queued(app, list(index)), index))
    batched_rows, one_by_one = results
    assert batched_rows == one_by_one
    # Defaults: email (no push subscription); sms_only: SMS; a pending payment tells no one.
    by_event = {row[0]: row[1] for row in batched_rows["notifications"]}
    assert sorted(by_event.items()) == [
        (0, "email"),
        (1, "email"),
        (3, "sms"),
        (4, "sms"),
        (6, "email"),
        (7, "email"),
    ]
    # Webhooks: every payment event of `defaults`, none of `refunds_only`, none without one.
    assert [row[0] for row in batched_rows["deliveries"]] == [0, 1, 2]


async def test_a_malformed_event_in_a_batch_is_dead_lettered_and_the_rest_queued_once(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth_headers: Any,
    payments: Any,
    producer: Any,
    stand_in: Any,
    webhook_receiver: Any,
) -> None:
    users = await merchants(client, auth_headers, stand_in, webhook_receiver)
    good = [payments.build(users["defaults"], "succeeded") for _ in range(3)]
    bad: EventEnvelope = good[0].model_copy(
        update={"event_id": uuid.uuid4(), "payload": {**good[0].payload, "amount": "lots"}}
    )
    consumer = feeder(app, producer)
    await consumer.apply([good[0], bad, *good[1:]])
    assert consumer.fallbacks == 1
    await consumer.apply(good)  # redelivered: the inbox skips them
    rows = await queued(app, [e.event_id for e in (*good, bad)])
    assert sorted(r.event_id for r in rows["notifications"]) == sorted(e.event_id for e in good)
    assert sorted(r.event_id for r in rows["deliveries"]) == sorted(e.event_id for e in good)
    async with unit_of_work(app.state.sessionmaker) as session:
        outcome = await session.scalar(
            text("SELECT outcome FROM inbox WHERE event_id = :e"), {"e": bad.event_id}
        )
    assert outcome == "dead_lettered"
