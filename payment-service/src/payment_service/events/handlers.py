"""`order.create` records a payment to charge; `order.cancelled` stops one not yet charged."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

from paygate_common.consumer import Handler
from paygate_common.events import EventEnvelope, OrderCancelled, OrderCreated
from payment_service.domain import payments as domain

log = logging.getLogger("payment_service.events")

CONSUMER_NAME = "payment-service"


def order_handler(*, provider: str, on_recorded: Callable[[], None] | None = None) -> Handler:
    """The consumer's handler; runs inside the runner's transaction (inbox row included).

    It only records intent: the charge itself is the executor's job, after this commits.
    """

    async def handle(session: AsyncSession, envelope: EventEnvelope) -> None:
        match envelope.event_type:
            case OrderCreated.event_type:
                order = OrderCreated.model_validate(envelope.payload)
                if await domain.record_order(session, order, provider=provider) and on_recorded:
                    on_recorded()
            case OrderCancelled.event_type:
                cancelled = OrderCancelled.model_validate(envelope.payload)
                status = await domain.cancel_for_order(session, cancelled)
                log.info("order %s cancelled; its payment is %s", cancelled.order_id, status)
            case _:
                # Other order events (later versions) are not ours to act on.
                return

    return handle
