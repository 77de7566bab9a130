"""Queries on API keys (lookup id + keyed hash only); callers own the transaction."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from user_service.store._rows import insert_unique
from user_service.store.tables import ApiKey, User


class DuplicateLookupId(Exception):
    """Two keys drew the same 71-bit lookup id: practically never, retried once if it happens."""


async def insert(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    name: str,
    environment: str,
    lookup_id: str,
    key_hash: str,
    scopes: list[str] | None,
) -> ApiKey:
    row = ApiKey(
        id=uuid.uuid4(),
        user_id=user_id,
        name=name,
        environment=environment,
        lookup_id=lookup_id,
        key_hash=key_hash,
        scopes=scopes,
    )
    await insert_unique(
        session, row, constraint="uq_api_keys_lookup_id", conflict=DuplicateLookupId()
    )
    return row


async def count_live(session: AsyncSession, user_id: uuid.UUID) -> int:
    stmt = select(func.count()).where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
    return int((await session.execute(stmt)).scalar_one())


async def list_live(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
) -> list[ApiKey]:
    stmt = select(ApiKey).where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
    if after is not None:
        stmt = stmt.where(tuple_(ApiKey.created_at, ApiKey.id) < tuple_(*after))
    stmt = stmt.order_by(ApiKey.created_at.desc(), ApiKey.id.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def revoke(session: AsyncSession, user_id: uuid.UUID, key_id: uuid.UUID) -> bool:
    """Revoke the owner's live key; False when there is none with that id."""
    result = await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .returning(ApiKey.id)
    )
    return result.first() is not None


async def find_with_owner(session: AsyncSession, lookup_id: str) -> tuple[ApiKey, User] | None:
    stmt = (
        select(ApiKey, User)
        .join(User, User.id == ApiKey.user_id)
        .where(ApiKey.lookup_id == lookup_id)
    )
    row = (await session.execute(stmt)).first()
    return None if row is None else (row[0], row[1])


async def mark_used(session: AsyncSession, key_id: uuid.UUID) -> None:
    """Record use at most once a minute: resolving runs every few seconds per gateway."""
    await session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            or_(
                ApiKey.last_used_at.is_(None),
                ApiKey.last_used_at < func.now() - func.make_interval(0, 0, 0, 0, 0, 1),
            ),
        )
        .values(last_used_at=func.now())
    )
