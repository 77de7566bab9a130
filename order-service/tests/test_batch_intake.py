"""The `payment.event` batch handler: one guarded UPDATE a round, the same orders as one by one."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from order_service.events.handlers import payment_consumer
from paygate_common.events import EventEnvelope, PaymentEvent, PaymentStatus, new_event
from paygate_common.events.models import RefundEvent, RefundStatus
from paygate_devstack.consumer_testing import BatchFeeder

S = PaymentStatus
COLUMNS = "status, cancel_reason, payment_provider, failure_code, failure_message, next_action"


@pytest.fixture(scope="module")
async def svc(start_order_service: Any) -> AsyncIterator[Any]:
    async with start_order_service() as service:
        yield service


def feeder(svc: Any, *, batched: bool = True) -> BatchFeeder:
    """The service's own consumer spec on the real runner, fed batches without Kafka."""
    return BatchFeeder(
        payment_consumer(max_attempts=1),
        settings=svc.settings,
        sessionmaker=svc.app.state.sessionmaker,
        producer=svc.producer,
        batched=batched,
    )


def paid(order: dict[str, Any], status: PaymentStatus, **fields: Any) -> EventEnvelope:
    payload = PaymentEvent(
        payment_id=fields.pop("payment_id", None) or uuid.uuid4(),
        order_id=uuid.UUID(order["id"]),
        user_id=uuid.UUID(order["user_id"]),
        status=status,
        amount=order["amount"],
        currency=order["currency"],
        provider="stripe",
        **fields,
    )
    return new_event(payload, producer="payment-service", aggregate_id=order["id"])


async def orders_and_batch(svc: Any) -> tuple[list[dict[str, Any]], list[EventEnvelope]]:
    """Five orders and a batch that moves each through a different story."""
    buyer = uuid.uuid4()
    orders = [(await svc.place(buyer, amount=1000 + i)).json() for i in range(5)]
    action = {"type": "redirect_to_url", "url": "https://example.test/3ds"}
    refund = RefundEvent(
        refund_id=uuid.uuid4(),
        payment_id=uuid.uuid4(),
        order_id=uuid.UUID(orders[0]["id"]),
        user_id=buyer,
        status=RefundStatus.SUCCEEDED,
        amount=10,
        currency="usd",
        provider="stripe",
    )
    stray = {**orders[0], "id": str(uuid.uuid4())}  # an order this service never had
    batch = [
        paid(orders[0], S.PROCESSING),
        paid(orders[1], S.REQUIRES_ACTION, next_action=action),
        paid(orders[0], S.SUCCEEDED),  # the same order again: a second round
        paid(orders[2], S.SUCCEEDED),
        paid(orders[3], S.CANCELLED),
        paid(orders[2], S.FAILED, failure_code="card_declined"),  # late: ignored
        paid(orders[3], S.REFUNDED),  # cancelled, then refunded: keeps its reason
        paid(orders[4], S.FAILED, failure_code="card_declined", failure_message="declined"),
        paid(stray, S.SUCCEEDED),
        new_event(refund, producer="payment-service", aggregate_id=orders[0]["id"]),
    ]
    return orders, batch


async def test_a_batch_moves_orders_exactly_as_event_by_event(svc: Any) -> None:
    results = []
    for batched in (True, False):
        orders, batch = await orders_and_batch(svc)
        consumer = feeder(svc, batched=batched)
        await consumer.apply(batch[:1])  # in the inbox before the batch
        await consumer.apply([*batch, batch[4], batch[0]])  # and two duplicates within it
        assert consumer.fallbacks == 0
        rows = []
        for order in orders:
            [row] = await svc.sql(f"SELECT {COLUMNS} FROM orders WHERE id = :id", id=order["id"])
            rows.append(tuple(row))
        results.append(rows)
    batched_rows, one_by_one = results
    assert batched_rows == one_by_one
    assert [row[0] for row in batched_rows] == [
        "paid",
        "requires_action",
        "paid",
        "refunded",
        "failed",
    ]
    assert batched_rows[1][5] == {"type": "redirect_to_url", "url": "https://example.test/3ds"}
    assert batched_rows[2][3] is None  # the late failure left the paid order alone
    assert batched_rows[3][1] == "payment_cancelled"


async def test_a_malformed_event_in_a_batch_is_dead_lettered_and_the_rest_applied_once(
    svc: Any,
) -> None:
    orders, _ = await orders_and_batch(svc)
    good = [paid(order, S.SUCCEEDED) for order in orders[:3]]
    bad = good[0].model_copy(
        update={"event_id": uuid.uuid4(), "payload": {**good[0].payload, "status": "exploded"}}
    )
    consumer = feeder(svc)
    await consumer.apply([good[0], bad, good[1], good[2]])
    assert consumer.fallbacks == 1
    await consumer.apply(good)  # redelivered: the inbox skips them
    for order in orders[:3]:
        [row] = await svc.sql("SELECT status FROM orders WHERE id = :id", id=order["id"])
        assert row.status == "paid"
    [outcome] = await svc.sql("SELECT outcome FROM inbox WHERE event_id = :e", e=bad.event_id)
    assert outcome.outcome == "dead_lettered"
