"""The payment state machine: guarded transitions, each publishing its `payment.event` atomically.

States: `created` (intent recorded, nothing sent) → `processing` (one attempt in flight) →
`succeeded` | `failed` | `requires_action` | `pending` | `cancelled`. `pending` and
`requires_action` settle later through webhooks. `succeeded`, `failed` and `cancelled` are
final: no transition leaves them, so a late or repeated webhook can never move a payment back.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from paygate_common.errors import NotFound
from paygate_common.events import (
    PAYMENT_EVENT,
    OrderCancelled,
    OrderCreated,
    PaymentEvent,
    PaymentStatus,
    new_event,
)
from paygate_common.logging import current_request_id
from paygate_common.outbox import add_event
from payment_service.connectors.base import ConnectorResult
from payment_service.store import payments as store
from payment_service.store.payments import PaymentRow

log = logging.getLogger("payment_service.payments")

PRODUCER = "payment-service"

CREATED = "created"
PROCESSING = "processing"
FINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})

# Where each published status may be entered from. Final states appear in no list.
ALLOWED_FROM: dict[PaymentStatus, tuple[str, ...]] = {
    PaymentStatus.SUCCEEDED: (CREATED, PROCESSING, "pending", "requires_action"),
    PaymentStatus.FAILED: (CREATED, PROCESSING, "pending", "requires_action"),
    PaymentStatus.CANCELLED: (CREATED, PROCESSING, "pending", "requires_action"),
    PaymentStatus.REQUIRES_ACTION: (CREATED, PROCESSING, "pending"),
    PaymentStatus.PENDING: (CREATED, PROCESSING),
}


class PaymentNotFound(NotFound):
    code = "payment_not_found"
    title = "Payment not found"


def status_of(result: ConnectorResult) -> str:
    """The payment state a connector result leads to."""
    if result.status is PaymentStatus.REFUNDED:
        # Refunds are a later flow; a connector never reports one for an authorization.
        raise ValueError("an authorization cannot end refunded")
    return str(result.status.value)


async def publish(session: AsyncSession, payment: PaymentRow) -> None:
    """Write the payment's current status as a `payment.event` in the caller's transaction."""
    payload = PaymentEvent(
        payment_id=payment.id,
        order_id=payment.order_id,
        user_id=payment.user_id,
        status=PaymentStatus(payment.status),
        amount=payment.amount,
        currency=payment.currency,
        provider=payment.provider,
        provider_reference=payment.provider_reference,
        failure_code=payment.failure_code,
        failure_message=payment.failure_message,
        next_action=payment.next_action,
    )
    envelope = new_event(
        payload,
        producer=PRODUCER,
        aggregate_id=str(payment.order_id),
        correlation_id=payment.correlation_id,
    )
    await add_event(session, envelope, topic=PAYMENT_EVENT)


async def apply_result(
    session: AsyncSession,
    payment_id: uuid.UUID,
    result: ConnectorResult,
    *,
    from_states: Sequence[str] | None = None,
) -> PaymentRow | None:
    """Move the payment to the result's status (guarded) and publish it; None if not allowed."""
    allowed = ALLOWED_FROM[result.status]
    if from_states is not None:
        allowed = tuple(s for s in allowed if s in from_states)
    values: dict[str, Any] = {
        "failure_code": result.failure_code,
        "decline_code": result.decline_code,
        "failure_message": result.failure_message,
        "next_action": result.next_action,
        "needs_reconcile": False,
        "lease_until": None,
    }
    if result.provider_reference:
        values["provider_reference"] = result.provider_reference
    row = await store.transition(
        session, payment_id, to=status_of(result), from_states=allowed, **values
    )
    if row is not None:
        await publish(session, row)
    return row


async def record_order(session: AsyncSession, order: OrderCreated, *, provider: str) -> bool:
    """Record the intent to charge an order; False if the order already has a payment."""
    if order.amount <= 0:
        raise ValueError(f"order {order.order_id} has a non-positive amount")
    row = await store.insert_payment(
        session,
        id=uuid.uuid4(),
        order_id=order.order_id,
        user_id=order.user_id,
        amount=order.amount,
        currency=order.currency.lower(),
        description=order.description,
        payment_method_id=order.payment_method_id,
        provider=provider,
        status=CREATED,
        correlation_id=current_request_id(),
    )
    if row is None:
        log.info("order %s already has a payment; order.create ignored", order.order_id)
    return row is not None


async def cancel_for_order(session: AsyncSession, order: OrderCancelled) -> str | None:
    """Stop an order from being charged; returns the payment's status afterwards.

    A payment nothing was sent for is cancelled at once. One with an attempt in flight, or
    whose earlier attempt's outcome is unknown, is only flagged: the executor asks the provider
    first and cancels only if nothing was charged.
    """
    payment = await store.get_payment_by_order(session, order.order_id)
    if payment is None:
        return None
    if payment.status in FINAL_STATES:
        return str(payment.status)
    if payment.status == CREATED and not payment.needs_reconcile:
        row = await store.transition(
            session,
            payment.id,
            to=PaymentStatus.CANCELLED.value,
            from_states=(CREATED,),
            cancel_requested=True,
            failure_code="order_cancelled",
            failure_message="The order was cancelled before it was charged",
            lease_until=None,
        )
        if row is not None:
            await publish(session, row)
            return str(row.status)
    await store.update_payment(
        session, payment.id, in_states=(CREATED, PROCESSING), cancel_requested=True
    )
    return str(payment.status)


async def get_payment_for(
    session: AsyncSession, payment_id: uuid.UUID, *, user_id: uuid.UUID, is_admin: bool
) -> tuple[PaymentRow, Sequence[Any]]:
    """The payment and its attempts, for its owner or an admin; 404 for anyone else."""
    payment = await store.get_payment(session, payment_id)
    if payment is None or (payment.user_id != user_id and not is_admin):
        raise PaymentNotFound("No such payment")
    return payment, await store.list_attempts(session, payment_id)
