"""`order.create` records a payment; `order.cancelled` stops or unwinds it; `order.refund_requested` refunds it."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

from paygate_common.consumer import Handler
from paygate_common.db import after_commit
from paygate_common.errors import PaygateError
from paygate_common.events import (
    ConfigChanged,
    EventEnvelope,
    OrderCancelled,
    OrderCreated,
    OrderRefundRequested,
)
from payment_service.domain import payments as domain
from payment_service.domain import refunds
from payment_service.domain.providers import CONFIG_KEY, ProviderChoice
from payment_service.store import payments as store

log = logging.getLogger("payment_service.events")

CONSUMER_NAME = "payment-service"


def order_handler(
    *,
    provider: str | ProviderChoice,
    on_recorded: Callable[[], None] | None = None,
) -> Handler:
    """The consumer's handler; runs inside the runner's transaction (inbox row included).

    It only records intent: the charge, the void or the refund reaches the provider after this
    commits (the executor and the operation sender), never inside the consumer's transaction.
    `on_recorded` wakes them once the batch has committed: woken earlier, they would look for
    the new rows before they are visible and wait for the next NOTIFY or tick.
    An order is charged through the default provider (`payments.providers`, live).
    """
    choice = provider if isinstance(provider, ProviderChoice) else None

    async def handle(session: AsyncSession, envelope: EventEnvelope) -> None:
        match envelope.event_type:
            case OrderCreated.event_type:
                order = OrderCreated.model_validate(envelope.payload)
                name = choice.default if choice is not None else str(provider)
                if await domain.record_order(session, order, provider=name) and on_recorded:
                    after_commit(session, on_recorded)
            case OrderCancelled.event_type:
                cancelled = OrderCancelled.model_validate(envelope.payload)
                status = await domain.cancel_for_order(session, cancelled)
                log.info("order %s cancelled; its payment is %s", cancelled.order_id, status)
                if on_recorded:
                    after_commit(session, on_recorded)
            case OrderRefundRequested.event_type:
                await refund_order(session, envelope, on_recorded)
            case ConfigChanged.event_type:
                change = ConfigChanged.model_validate(envelope.payload)
                if change.key == CONFIG_KEY and choice is not None:
                    # In memory, this process only; an invalid value is logged and ignored.
                    choice.apply(change.value, change.config_version)
            case _:
                # Other order events (later versions) are not ours to act on.
                return

    return handle


async def refund_order(
    session: AsyncSession, envelope: EventEnvelope, on_recorded: Callable[[], None] | None
) -> None:
    """Refund an order's payment; the event id makes a redelivered request a no-op."""
    requested = OrderRefundRequested.model_validate(envelope.payload)
    payment = await store.get_payment_by_order(session, requested.order_id)
    if payment is None or payment.user_id != requested.user_id:
        log.warning("refund requested for order %s, which has no payment", requested.order_id)
        return
    nested = await session.begin_nested()
    try:
        refund = await refunds.request_refund(
            session,
            payment.id,
            amount=requested.amount,
            reason="order_refund",
            source="order",
            request_key=f"order-event-{envelope.event_id}",
        )
    except PaygateError as exc:
        # Nothing left to refund, or not refundable now: a business answer, not a failure to
        # retry (the order keeps its status; the payment's events tell the truth).
        await nested.rollback()
        log.warning("refund of order %s refused: %s (%s)", requested.order_id, exc.code, exc.detail)
        return
    await nested.commit()
    log.info("order %s: refund %s of %d recorded", requested.order_id, refund.id, refund.amount)
    if on_recorded:
        after_commit(session, on_recorded)
