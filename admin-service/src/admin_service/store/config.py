"""Queries on `config_versions`: the current version of a key, its history, a new version."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from admin_service.store.tables import config_versions as cv


@dataclass(frozen=True)
class ConfigVersion:
    key: str
    version: int
    value: Any
    actor_id: uuid.UUID | None
    reason: str | None
    rolled_back_to: int | None
    created_at: datetime


def _row(row: Any) -> ConfigVersion:
    return ConfigVersion(**dict(row._mapping))


async def lock_key(session: AsyncSession, key: str) -> None:
    """Serialise writers of one key for the rest of the transaction (versions never fork)."""
    await session.execute(
        sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext("config:" + key)))
    )


async def current(session: AsyncSession, key: str) -> ConfigVersion | None:
    row = (
        await session.execute(
            sa.select(cv).where(cv.c.key == key).order_by(cv.c.version.desc()).limit(1)
        )
    ).first()
    return _row(row) if row else None


async def version(session: AsyncSession, key: str, number: int) -> ConfigVersion | None:
    row = (
        await session.execute(sa.select(cv).where(cv.c.key == key, cv.c.version == number))
    ).first()
    return _row(row) if row else None


async def latest_of_each(session: AsyncSession) -> list[ConfigVersion]:
    rows = await session.execute(
        sa.select(cv).distinct(cv.c.key).order_by(cv.c.key, cv.c.version.desc())
    )
    return [_row(r) for r in rows]


async def history(
    session: AsyncSession, key: str, *, limit: int, before: int | None
) -> list[ConfigVersion]:
    query = sa.select(cv).where(cv.c.key == key)
    if before is not None:
        query = query.where(cv.c.version < before)
    rows = await session.execute(query.order_by(cv.c.version.desc()).limit(limit))
    return [_row(r) for r in rows]


async def insert(
    session: AsyncSession,
    *,
    key: str,
    version: int,
    value: Any,
    actor_id: uuid.UUID | None,
    reason: str | None,
    rolled_back_to: int | None = None,
) -> ConfigVersion:
    row = (
        await session.execute(
            sa.insert(cv)
            .values(
                key=key,
                version=version,
                value=value,
                actor_id=actor_id,
                reason=reason,
                rolled_back_to=rolled_back_to,
            )
            .returning(*cv.c)
        )
    ).one()
    return _row(row)
