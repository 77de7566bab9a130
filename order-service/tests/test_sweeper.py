"""The sweeper cancels orders left pending too long and tells payment-service on `order.event`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from paygate_common.events import PaymentStatus


@pytest.fixture(scope="module")
async def svc(start_order_service: Any) -> AsyncIterator[Any]:
    async with start_order_service(
        pending_timeout_seconds=1.0, sweep_interval_seconds=0.2, sweep_batch_size=2
    ) as service:
        yield service


async def test_a_stale_pending_order_is_cancelled_and_announced(
    svc: Any, read_topic: Any
) -> None:
    buyer = uuid.uuid4()
    order = (await svc.place(buyer)).json()
    assert order["status"] == "pending"
    cancelled = await svc.wait_status(order, "cancelled", timeout=10)
    assert cancelled["cancel_reason"] == "payment_timeout"

    messages = await read_topic(svc.bootstrap, "order.event", key=order["id"])
    assert [m.event_type for m in messages] == ["order.cancelled"]
    assert messages[0].payload == {
        "order_id": order["id"],
        "user_id": str(buyer),
        "reason": "payment_timeout",
    }


async def test_more_stale_orders_than_one_batch_are_all_cancelled(svc: Any) -> None:
    buyer = uuid.uuid4()
    orders = [(await svc.place(buyer)).json() for _ in range(5)]
    for order in orders:
        await svc.wait_status(order, "cancelled", timeout=10)
    rows = await svc.sql(
        "SELECT count(*) FROM outbox WHERE topic = 'order.event' AND key = ANY(:keys)",
        keys=[o["id"] for o in orders],
    )
    assert rows[0][0] == 5


async def test_a_settled_order_is_not_cancelled_and_a_late_payment_cannot_revive_one(
    svc: Any,
) -> None:
    buyer = uuid.uuid4()
    paid = (await svc.place(buyer)).json()
    stale = (await svc.place(buyer)).json()
    await svc.pay(paid, PaymentStatus.SUCCEEDED)
    await svc.wait_status(paid, "paid", timeout=5)
    await svc.wait_status(stale, "cancelled", timeout=10)
    await asyncio.sleep(1.5)
    assert (await svc.order(paid["id"], buyer))["status"] == "paid"

    late = await svc.pay(stale, PaymentStatus.SUCCEEDED)
    await svc.applied(late)
    assert (await svc.order(stale["id"], buyer))["status"] == "cancelled"
