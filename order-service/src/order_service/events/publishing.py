"""Events order-service publishes, always through the outbox in the caller's transaction."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from order_service.store.orders import OrderRecord
from paygate_common.events import (
    ORDER_CREATE,
    ORDER_EVENT,
    EventEnvelope,
    OrderCancelled,
    OrderCreated,
    OrderRefundRequested,
    new_event,
)
from paygate_common.outbox import OutgoingEvent, add_event

PRODUCER = "order-service"


def order_created(
    *,
    order_id: uuid.UUID,
    user_id: uuid.UUID,
    amount: int,
    currency: str,
    description: str | None,
    payment_method_id: uuid.UUID | None,
) -> OutgoingEvent:
    """The `order.create` event of a new order (written with the order: `place_order`)."""
    payload = OrderCreated(
        order_id=order_id,
        user_id=user_id,
        amount=amount,
        currency=currency,
        description=description,
        payment_method_id=payment_method_id,
    )
    envelope: EventEnvelope = new_event(payload, producer=PRODUCER, aggregate_id=str(order_id))
    return OutgoingEvent(envelope, ORDER_CREATE)


async def publish_order_created(session: AsyncSession, order: OrderRecord) -> None:
    created = order_created(
        order_id=order.id,
        user_id=order.user_id,
        amount=order.amount,
        currency=order.currency,
        description=order.description,
        payment_method_id=order.payment_method_id,
    )
    await add_event(session, created.envelope, topic=created.topic)


async def publish_order_cancelled(
    session: AsyncSession, *, order_id: uuid.UUID, user_id: uuid.UUID, reason: str
) -> None:
    payload = OrderCancelled(order_id=order_id, user_id=user_id, reason=reason)
    envelope = new_event(payload, producer=PRODUCER, aggregate_id=str(order_id))
    await add_event(session, envelope, topic=ORDER_EVENT)


async def publish_refund_requested(
    session: AsyncSession, *, order_id: uuid.UUID, user_id: uuid.UUID, amount: int | None
) -> None:
    payload = OrderRefundRequested(order_id=order_id, user_id=user_id, amount=amount)
    envelope = new_event(payload, producer=PRODUCER, aggregate_id=str(order_id))
    await add_event(session, envelope, topic=ORDER_EVENT)
