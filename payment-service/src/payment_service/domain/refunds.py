"""Refund rules: reserve under the payment's row lock, settle once, keep the payment's totals right.

The invariant: for every payment, `amount_refunded + amount_refund_pending ≤ amount_captured`.
`request_refund` locks the payment row, checks what is left, inserts the refund (`pending`), its
provider operation (with the idempotency key `paygate-refund-<refund id>`) and the reservation in
ONE transaction; so twenty concurrent requests serialise on the lock and only those that fit are
recorded. The provider is called only after that commit (workers/operations.py). `settle_refund`
applies the provider's answer — or a webhook's, whichever comes first — exactly once, guarded by
the refund's own `pending` state.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from paygate_common.events import PAYMENT_EVENT, RefundEvent, RefundStatus, new_event
from paygate_common.logging import current_request_id
from paygate_common.outbox import add_event
from paygate_common.worker import notify
from payment_service.connectors.base import (
    Flow,
    RefundResult,
    refund_key,
    require,
)
from payment_service.connectors.registry import connector_for
from payment_service.domain import payments
from payment_service.domain.errors import (
    InvalidState,
    PaymentNotFound,
    RefundExceedsCaptured,
    RefundNotFound,
)
from payment_service.domain.states import CAPTURED, PaymentState, public_status
from payment_service.store import payments as store
from payment_service.store.payments import PaymentRow, RefundRow

log = logging.getLogger("payment_service.refunds")

S = PaymentState


async def publish_refund(session: AsyncSession, refund: RefundRow, payment: PaymentRow) -> None:
    payload = RefundEvent(
        refund_id=refund.id,
        payment_id=refund.payment_id,
        order_id=payment.order_id,
        user_id=refund.user_id,
        status=RefundStatus(refund.status),
        amount=refund.amount,
        currency=refund.currency,
        provider=payment.provider,
        reason=refund.reason,
        provider_reference=refund.provider_reference,
        failure_code=refund.failure_code,
    )
    envelope = new_event(
        payload,
        producer=payments.PRODUCER,
        # The payment's key: its refunds and its own events stay in one partition, in order.
        aggregate_id=str(payment.order_id or payment.id),
        correlation_id=refund.correlation_id,
    )
    await add_event(session, envelope, topic=PAYMENT_EVENT)


def refundable(payment: PaymentRow) -> int:
    """What is left to refund: captured, minus refunded, minus what pending refunds reserved."""
    return int(payment.amount_captured - payment.amount_refunded - payment.amount_refund_pending)


async def request_refund(
    session: AsyncSession,
    payment_id: uuid.UUID,
    *,
    amount: int | None,
    reason: str | None,
    source: str = "api",
    request_key: str | None = None,
) -> RefundRow:
    """Reserve and record a refund (full when `amount` is None); the provider hears after commit."""
    payment = await store.lock_payment(session, payment_id)
    if payment is None:
        raise PaymentNotFound("No such payment")
    if payment.status not in CAPTURED:
        raise InvalidState(
            "Only a payment whose money was captured can be refunded; this one is "
            f"{public_status(payment.status).value}"
        )
    left = refundable(payment)
    amount = left if amount is None else amount
    if amount <= 0 or amount > left:
        raise RefundExceedsCaptured(
            f"At most {left} of the captured {payment.amount_captured} can still be refunded",
            amount_refundable=left,
        )
    connector = connector_for(payment.provider)
    require(connector, Flow.REFUND)
    if amount < payment.amount_captured:
        require(connector, Flow.PARTIAL_REFUND)
    refund_id = uuid.uuid4()
    refund = await store.insert_refund(
        session,
        id=refund_id,
        payment_id=payment.id,
        user_id=payment.user_id,
        amount=amount,
        currency=payment.currency,
        reason=reason,
        source=source,
        request_key=request_key,
        correlation_id=current_request_id(),
    )
    if refund is None:
        # The same consumed request (order.refund_requested redelivered) made it already.
        existing = await store.refund_by_request_key(session, request_key or "")
        assert existing is not None
        return existing
    await store.update_payment(
        session,
        payment.id,
        in_states=(payment.status,),
        amount_refund_pending=payment.amount_refund_pending + amount,
    )
    await store.insert_operation(
        session,
        id=uuid.uuid4(),
        payment_id=payment.id,
        kind="refund",
        refund_id=refund.id,
        amount=amount,
        idempotency_key=refund_key(refund.id),
        source=source,
    )
    await publish_refund(session, refund, payment)
    await notify(session, payments.WORK_CHANNEL)
    return refund


async def settle_refund(
    session: AsyncSession, refund_id: uuid.UUID, result: RefundResult
) -> RefundRow | None:
    """Apply the provider's answer (or a webhook's) once; None if already settled or still pending."""
    refund = await store.lock_refund(session, refund_id)
    if refund is None or refund.status != RefundStatus.PENDING:
        return None
    if result.status is RefundStatus.PENDING:
        if result.provider_reference and not refund.provider_reference:
            await store.update_refund(
                session,
                refund.id,
                from_status="pending",
                provider_reference=result.provider_reference,
            )
        return None
    payment = await store.lock_payment(session, refund.payment_id)
    assert payment is not None
    pending = max(0, payment.amount_refund_pending - refund.amount)
    if result.status is RefundStatus.SUCCEEDED:
        refunded = payment.amount_refunded + refund.amount
        target = S.REFUNDED if refunded >= payment.amount_captured else S.PARTIALLY_REFUNDED
        moved = await payments.move(
            session,
            payment.id,
            to=target,
            from_states=(PaymentState(payment.status),),
            amount_refunded=refunded,
            amount_refund_pending=pending,
        )
        if moved is None:
            log.error(
                "refund %s succeeded but payment %s is %s", refund.id, payment.id, payment.status
            )
    else:
        await store.update_payment(
            session, payment.id, in_states=(payment.status,), amount_refund_pending=pending
        )
    settled = await store.update_refund(
        session,
        refund.id,
        from_status="pending",
        status=result.status.value,
        provider_reference=result.provider_reference or refund.provider_reference,
        failure_code=result.failure_code,
        failure_message=result.failure_message,
    )
    assert settled is not None
    current = await store.get_payment(session, payment.id)
    assert current is not None
    await publish_refund(session, settled, current)
    return settled


async def record_external_refund(
    session: AsyncSession, payment_id: uuid.UUID, result: RefundResult
) -> RefundRow | None:
    """A refund made at the provider outside paygate (its dashboard), seen in a webhook."""
    if (
        result.status is not RefundStatus.SUCCEEDED
        or not result.amount
        or not result.provider_reference
    ):
        return None
    if await store.get_refund_by_reference(session, result.provider_reference) is not None:
        return None
    payment = await store.lock_payment(session, payment_id)
    if payment is None or payment.status not in CAPTURED:
        return None
    # Never past what is left (our own pending refunds keep their reservation).
    amount = min(result.amount, refundable(payment))
    if amount <= 0:
        return None
    refund = await store.insert_refund(
        session,
        id=uuid.uuid4(),
        payment_id=payment.id,
        user_id=payment.user_id,
        amount=amount,
        currency=payment.currency,
        reason="made at the provider",
        source="provider",
        provider_reference=result.provider_reference,
        correlation_id=current_request_id(),
    )
    assert refund is not None
    # Recorded as reserved-then-settled, so the totals follow the one path every refund takes.
    await store.update_payment(
        session,
        payment.id,
        in_states=(payment.status,),
        amount_refund_pending=payment.amount_refund_pending + amount,
    )
    return await settle_refund(session, refund.id, result)


async def unwind_cancelled_order(session: AsyncSession, payment: PaymentRow) -> None:
    """An order was cancelled but its charge went through: void or refund it, automatically."""
    if payment.status == S.REQUIRES_CAPTURE:
        await payments.request_void(session, payment.id, source="order", reason="order_cancelled")
        return
    if payment.status in (S.SUCCEEDED, S.PARTIALLY_REFUNDED) and refundable(payment) > 0:
        refund = await request_refund(
            session,
            payment.id,
            amount=None,
            reason="order_cancelled",
            source="cancellation",
            request_key=f"cancellation-{payment.id}",
        )
        log.warning(
            "payment %s succeeded after its order %s was cancelled: refund %s of %d",
            payment.id,
            payment.order_id,
            refund.id,
            refund.amount,
        )


async def refunds_for(
    session: AsyncSession, payment_id: uuid.UUID, *, user_id: uuid.UUID, is_admin: bool
) -> Sequence[RefundRow]:
    await payments.payment_for(session, payment_id, user_id=user_id, is_admin=is_admin)
    return await store.list_refunds(session, payment_id)


async def refund_for(
    session: AsyncSession,
    payment_id: uuid.UUID,
    refund_id: uuid.UUID,
    *,
    user_id: uuid.UUID,
    is_admin: bool,
) -> RefundRow:
    await payments.payment_for(session, payment_id, user_id=user_id, is_admin=is_admin)
    refund = await store.get_refund(session, refund_id)
    if refund is None or refund.payment_id != payment_id:
        raise RefundNotFound("No such refund of this payment")
    return refund
