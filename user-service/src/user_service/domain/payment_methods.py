"""Saved payment methods: attach at the provider, store the token and card summary, one default."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from user_service.domain.errors import PaymentMethodExists, PaymentMethodNotFound, UserNotFound
from user_service.providers.stripe import PROVIDER, StripeCards
from user_service.store import payment_methods as methods
from user_service.store import users
from user_service.store.tables import PaymentMethod, User

log = logging.getLogger("user_service.payment_methods")


async def _lock_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    # Serialises one user's saves and deletes: one Stripe customer, one default, no lost updates.
    user = await users.get_by_id(session, user_id, for_update=True)
    if user is None:
        raise UserNotFound("No such user")
    return user


async def save_payment_method(
    *,
    session: AsyncSession,
    stripe_cards: StripeCards,
    user_id: uuid.UUID,
    token: str,
    make_default: bool,
) -> PaymentMethod:
    """Attach `token` to the user's Stripe customer (created on first use) and save the card.

    The user's first method becomes the default; `make_default` moves the default to the new
    one in the same transaction (the partial unique index forbids two defaults).
    """
    user = await _lock_user(session, user_id)
    if user.stripe_customer_id is None:
        customer_id = await stripe_cards.create_customer(user_id=str(user.id), email=user.email)
        await users.set_stripe_customer(session, user.id, customer_id)
        user.stripe_customer_id = customer_id
    card = await stripe_cards.attach_card(token, customer_id=user.stripe_customer_id)
    is_default = make_default or not await methods.has_any(session, user.id)
    if is_default:
        await methods.clear_default(session, user.id)
    try:
        method = await methods.insert(
            session,
            user_id=user.id,
            provider=PROVIDER,
            provider_payment_method_id=card.provider_payment_method_id,
            brand=card.brand,
            last4=card.last4,
            exp_month=card.exp_month,
            exp_year=card.exp_year,
            is_default=is_default,
        )
    except methods.DuplicatePaymentMethod:
        raise PaymentMethodExists("This payment method is already saved") from None
    log.info(
        "payment method saved",
        extra={"user_id": str(user.id), "payment_method_id": str(method.id), "brand": card.brand},
    )
    return method


async def list_payment_methods(*, session: AsyncSession, user_id: uuid.UUID) -> list[PaymentMethod]:
    return await methods.list_for_user(session, user_id)


async def delete_payment_method(
    *,
    session: AsyncSession,
    stripe_cards: StripeCards,
    user_id: uuid.UUID,
    payment_method_id: uuid.UUID,
) -> None:
    """Forget a method and detach it at Stripe; if it was the default, the newest other takes over."""
    await _lock_user(session, user_id)
    method = await methods.get_for_user(session, user_id, payment_method_id)
    if method is None:
        raise PaymentMethodNotFound("No such payment method")
    await methods.remove(session, method.id)
    if method.is_default:
        successor = await methods.newest_other(session, user_id, method.id)
        if successor is not None:
            await methods.set_default(session, successor.id)
    # Last, so a Stripe outage rolls the delete back instead of leaving an attached orphan.
    await stripe_cards.detach(method.provider_payment_method_id)


@dataclass(frozen=True)
class PaymentContext:
    user: User
    payment_method: PaymentMethod | None


async def payment_context(
    *, session: AsyncSession, user_id: uuid.UUID, payment_method_id: uuid.UUID | None
) -> PaymentContext:
    """What payment-service needs to charge a user: the named method, else the default."""
    # One query per checkout (order-service asks once per order): the user and the method.
    found = await methods.user_with_method(session, user_id, payment_method_id)
    if found is None:
        raise UserNotFound("No such user")
    user, method = found
    if payment_method_id is not None and method is None:
        raise PaymentMethodNotFound("No such payment method for this user")
    return PaymentContext(user=user, payment_method=method)
