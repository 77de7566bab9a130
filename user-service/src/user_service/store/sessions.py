"""Queries on sign-in sessions and their refresh tokens; callers own the transaction."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from user_service.store.tables import AuthSession, RefreshToken


async def insert_session(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    user_agent: str | None,
    ip: str | None,
    expires_at: datetime,
) -> AuthSession:
    row = AuthSession(
        id=uuid.uuid4(), user_id=user_id, user_agent=user_agent, ip=ip, expires_at=expires_at
    )
    session.add(row)
    await session.flush()
    await session.refresh(row)
    return row


async def insert_refresh_token(
    session: AsyncSession, *, session_id: uuid.UUID, token_hash: str, expires_at: datetime
) -> None:
    session.add(
        RefreshToken(
            id=uuid.uuid4(), session_id=session_id, token_hash=token_hash, expires_at=expires_at
        )
    )
    await session.flush()


async def lock_by_token_hash(
    session: AsyncSession, token_hash: str
) -> tuple[RefreshToken, AuthSession] | None:
    """The token and its session, both locked: concurrent rotations of one session serialise."""
    stmt = (
        select(RefreshToken, AuthSession)
        .join(AuthSession, AuthSession.id == RefreshToken.session_id)
        .where(RefreshToken.token_hash == token_hash)
        .with_for_update()
    )
    row = (await session.execute(stmt)).first()
    return None if row is None else (row[0], row[1])


async def spend_token(session: AsyncSession, token_id: uuid.UUID) -> None:
    await session.execute(
        update(RefreshToken).where(RefreshToken.id == token_id).values(spent_at=func.now())
    )


async def touch_session(session: AsyncSession, session_id: uuid.UUID, *, ip: str | None) -> None:
    await session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id)
        .values(last_used_at=func.now(), ip=ip)
    )


async def revoke(session: AsyncSession, session_id: uuid.UUID, *, reason: str) -> bool:
    """Revoke one live session; False when it was already revoked."""
    result = await session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=func.now(), revoked_reason=reason)
        .returning(AuthSession.id)
    )
    return result.first() is not None


async def revoke_all_for_user(
    session: AsyncSession, user_id: uuid.UUID, *, reason: str
) -> list[uuid.UUID]:
    result = await session.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=func.now(), revoked_reason=reason)
        .returning(AuthSession.id)
    )
    return [r[0] for r in result]


async def get_live_for_user(
    session: AsyncSession, user_id: uuid.UUID, session_id: uuid.UUID
) -> AuthSession | None:
    stmt = select(AuthSession).where(
        AuthSession.id == session_id,
        AuthSession.user_id == user_id,
        AuthSession.revoked_at.is_(None),
        AuthSession.expires_at > func.now(),
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_live_for_user(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
) -> list[AuthSession]:
    stmt = select(AuthSession).where(
        AuthSession.user_id == user_id,
        AuthSession.revoked_at.is_(None),
        AuthSession.expires_at > func.now(),
    )
    if after is not None:
        stmt = stmt.where(tuple_(AuthSession.created_at, AuthSession.id) < tuple_(*after))
    stmt = stmt.order_by(AuthSession.created_at.desc(), AuthSession.id.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())
