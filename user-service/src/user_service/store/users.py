"""Queries on accounts; callers own the transaction."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_, update
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


async def update_profile(session: AsyncSession, user_id: uuid.UUID, values: dict[str, Any]) -> None:
    """Set `full_name` / `phone` (already validated); the caller holds the row."""
    await session.execute(update(User).where(User.id == user_id).values(**values))


async def set_role_and_status(
    session: AsyncSession, user_id: uuid.UUID, *, role: str, disabled: bool
) -> None:
    await session.execute(
        update(User).where(User.id == user_id).values(role=role, disabled=disabled)
    )


def _like_pattern(text: str) -> str:
    """A LIKE pattern matching `text` literally anywhere (its `%`, `_` and `\\` escaped)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def search(
    session: AsyncSession,
    *,
    email_contains: str | None,
    role: str | None,
    disabled: bool | None,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
) -> list[User]:
    """Accounts newest first, keyset-paginated on (created_at, id)."""
    stmt = select(User)
    if email_contains:
        # Emails are stored lowercased, so a lowercased needle makes this case-insensitive.
        stmt = stmt.where(User.email.like(_like_pattern(email_contains.lower()), escape="\\"))
    if role is not None:
        stmt = stmt.where(User.role == role)
    if disabled is not None:
        stmt = stmt.where(User.disabled.is_(disabled))
    if after is not None:
        stmt = stmt.where(tuple_(User.created_at, User.id) < tuple_(*after))
    stmt = stmt.order_by(User.created_at.desc(), User.id.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())
