"""Hosted checkout rules: which payment a page may show and take, and the customer's choice.

A checkout payment (created with `checkout: true`) waits in `requires_action` with nothing at
any provider. The customer's choice — a Stripe.js `pm_…` token, or a redirect provider — sends
it back to `created` for the executor, in one guarded move: a page can pay a payment once.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from paygate_common.errors import Conflict, NotFound
from paygate_common.worker import notify
from payment_service.domain.payments import WORK_CHANNEL, move
from payment_service.domain.states import PaymentState
from payment_service.store import payments as store
from payment_service.store.payments import PaymentRow

S = PaymentState


class CheckoutNotFound(NotFound):
    # Also a payment that exists but was not created for the hosted page.
    code, title = "checkout_not_found", "No such checkout"


class CheckoutClosed(Conflict):
    code, title = "checkout_closed", "This checkout can no longer be paid"


def is_unpaid(payment: PaymentRow) -> bool:
    """Waiting for the customer's choice: nothing chosen, nothing sent to any provider."""
    return (
        payment.status == S.REQUIRES_ACTION
        and payment.provider_reference is None
        and payment.payment_method_token is None
    )


def is_open(payment: PaymentRow, *, ttl_seconds: float, now: datetime | None = None) -> bool:
    """Still waiting for the customer's choice, and not expired."""
    now = now or datetime.now(UTC)
    return is_unpaid(payment) and payment.created_at + timedelta(seconds=ttl_seconds) > now


async def checkout_for(session: AsyncSession, payment_id: uuid.UUID) -> PaymentRow:
    payment = await store.get_payment(session, payment_id)
    if payment is None or not payment.checkout:
        raise CheckoutNotFound("No such checkout")
    return payment


async def pay(
    session: AsyncSession,
    payment_id: uuid.UUID,
    *,
    ttl_seconds: float,
    provider: str,
    payment_method_token: str | None = None,
) -> PaymentRow:
    """The customer chose: record the token (or the provider) and hand the payment to the executor.

    Guarded on the row lock and the state: a second submission (a replayed request, a double
    click, a second tab) finds the checkout closed and changes nothing.
    """
    payment = await store.lock_payment(session, payment_id)
    if payment is None or not payment.checkout:
        raise CheckoutNotFound("No such checkout")
    if not is_open(payment, ttl_seconds=ttl_seconds):
        raise CheckoutClosed("This checkout was already paid, cancelled or has expired")
    row = await move(
        session,
        payment_id,
        to=S.CREATED,
        from_states=(S.REQUIRES_ACTION,),
        expect={"payment_method_token": None, "provider_reference": None},
        provider=provider,
        payment_method_token=payment_method_token,
        next_action=None,
        next_attempt_at=func.now(),
        lease_until=None,
    )
    if row is None:
        raise CheckoutClosed("This checkout was already paid")
    await notify(session, WORK_CHANNEL)
    return row
