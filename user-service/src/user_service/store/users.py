"""Queries on accounts; callers own the transaction."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from user_service.store._rows import insert_unique
from user_service.store.tables import User


class DuplicateEmail(Exception):
    """The unique index refused the email: another account has it (maybe created just now)."""


async def get_by_id(
    session: AsyncSession, user_id: uuid.UUID, *, for_update: bool = False
) -> User | None:
    stmt = select(User).where(User.id == user_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_by_email(session: AsyncSession, email: str) -> User | None:
    return (await session.execute(select(User).where(User.email == email))).scalar_one_or_none()


async def insert(
    session: AsyncSession, *, email: str, full_name: str, role: str, password_hash: str
) -> User:
    user = User(
        id=uuid.uuid4(), email=email, full_name=full_name, role=role, password_hash=password_hash
    )
    await insert_unique(session, user, constraint="uq_users_email", conflict=DuplicateEmail())
    return user


async def set_password_hash(session: AsyncSession, user_id: uuid.UUID, password_hash: str) -> None:
    await session.execute(
        update(User).where(User.id == user_id).values(password_hash=password_hash)
    )


async def make_admin(session: AsyncSession, user_id: uuid.UUID, *, password_hash: str) -> None:
    await session.execute(
        update(User).where(User.id == user_id).values(role="admin", password_hash=password_hash)
    )


async def set_stripe_customer(session: AsyncSession, user_id: uuid.UUID, customer_id: str) -> None:
    await session.execute(
        update(User).where(User.id == user_id).values(stripe_customer_id=customer_id)
    )
