"""Events order-service publishes, always through the outbox in the caller's transaction."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from paygate_common.events import (
    ORDER_CREATE,
    ORDER_EVENT,
    EventEnvelope,
    OrderCancelled,
    OrderCreated,
    OrderRefundRequested,
    new_event,
)
from paygate_common.internal.users import PaymentContextRead
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
    context: PaymentContextRead | None = None,
) -> OutgoingEvent:
    """The `order.create` event of a new order (written with the order: `place_order`).

    With the payment context read at creation it names the method to charge (the default one
    resolved to its id) and carries its provider token and the provider's customer, so
    payment-service charges without asking user-service; without one payment-service asks.
    """
    method = context.payment_method if context is not None else None
    payload = OrderCreated(
        order_id=order_id,
        user_id=user_id,
        amount=amount,
        currency=currency,
        description=description,
        payment_method_id=method.id if method is not None else payment_method_id,
        payment_method_provider=method.provider if method is not None else None,
        payment_method_token=method.token if method is not None else None,
        provider_customer_id=context.provider_customer_id if method and context else None,
    )
    envelope: EventEnvelope = new_event(payload, producer=PRODUCER, aggregate_id=str(order_id))
    return OutgoingEvent(envelope, ORDER_CREATE)


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
