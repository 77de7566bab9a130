"""Queries on saved payment methods; the partial unique index keeps one default per user."""

from __future__ import annotations

import uuid

from sqlalchemy import and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from user_service.store._rows import insert_unique
from user_service.store.tables import PaymentMethod, User


class DuplicatePaymentMethod(Exception):
    """This provider payment method is already saved."""


async def list_for_user(session: AsyncSession, user_id: uuid.UUID) -> list[PaymentMethod]:
    stmt = (
        select(PaymentMethod)
        .where(PaymentMethod.user_id == user_id)
        .order_by(PaymentMethod.created_at, PaymentMethod.id)
    )
    return list((await session.execute(stmt)).scalars())


async def user_with_method(
    session: AsyncSession, user_id: uuid.UUID, payment_method_id: uuid.UUID | None
) -> tuple[User, PaymentMethod | None] | None:
    """The user and the named method (else the default) in one query; None: no such user.

    The method is None when the user has no such method (or no default).
    """
    wanted = (
        PaymentMethod.id == payment_method_id
        if payment_method_id is not None
        else PaymentMethod.is_default.is_(True)
    )
    stmt = (
        select(User, PaymentMethod)
        .outerjoin(PaymentMethod, and_(PaymentMethod.user_id == User.id, wanted))
        .where(User.id == user_id)
    )
    row = (await session.execute(stmt)).first()
    return None if row is None else (row[0], row[1])


async def get_for_user(
    session: AsyncSession, user_id: uuid.UUID, payment_method_id: uuid.UUID
) -> PaymentMethod | None:
    stmt = select(PaymentMethod).where(
        PaymentMethod.id == payment_method_id, PaymentMethod.user_id == user_id
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def has_any(session: AsyncSession, user_id: uuid.UUID) -> bool:
    stmt = select(PaymentMethod.id).where(PaymentMethod.user_id == user_id).limit(1)
    return (await session.execute(stmt)).first() is not None


async def clear_default(session: AsyncSession, user_id: uuid.UUID) -> None:
    await session.execute(
        update(PaymentMethod)
        .where(PaymentMethod.user_id == user_id, PaymentMethod.is_default.is_(True))
        .values(is_default=False)
    )


async def set_default(session: AsyncSession, payment_method_id: uuid.UUID) -> None:
    await session.execute(
        update(PaymentMethod).where(PaymentMethod.id == payment_method_id).values(is_default=True)
    )


async def insert(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    provider: str,
    provider_payment_method_id: str,
    brand: str,
    last4: str,
    exp_month: int,
    exp_year: int,
    is_default: bool,
) -> PaymentMethod:
    method = PaymentMethod(
        id=uuid.uuid4(),
        user_id=user_id,
        provider=provider,
        provider_payment_method_id=provider_payment_method_id,
        brand=brand,
        last4=last4,
        exp_month=exp_month,
        exp_year=exp_year,
        is_default=is_default,
    )
    await insert_unique(
        session,
        method,
        constraint="uq_payment_methods_provider_token",
        conflict=DuplicatePaymentMethod(provider_payment_method_id),
    )
    return method


async def newest_other(
    session: AsyncSession, user_id: uuid.UUID, excluding: uuid.UUID
) -> PaymentMethod | None:
    stmt = (
        select(PaymentMethod)
        .where(PaymentMethod.user_id == user_id, PaymentMethod.id != excluding)
        .order_by(PaymentMethod.created_at.desc(), PaymentMethod.id.desc())
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def remove(session: AsyncSession, payment_method_id: uuid.UUID) -> None:
    await session.execute(delete(PaymentMethod).where(PaymentMethod.id == payment_method_id))
