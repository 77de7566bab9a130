"""Configuration pushed by admin-service: one row per key, the newest version wins."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from transaction_service.store.tables import ledger_config


async def config_value(session: AsyncSession, key: str) -> Any:
    """The stored value of `key` (None when admin-service never set it)."""
    result = await session.execute(select(ledger_config.c.value).where(ledger_config.c.key == key))
    return result.scalar_one_or_none()


async def applied(session: AsyncSession) -> list[Any]:
    """Every stored key with its version, value and when it was applied."""
    c = ledger_config.c
    query = select(c.key, c.config_version, c.value, c.updated_at).order_by(c.key)
    return list((await session.execute(query)).all())


async def save_config(session: AsyncSession, *, key: str, version: int, value: Any) -> bool:
    """Store `value` unless a newer (or the same) version is stored; True when stored."""
    stmt = pg_insert(ledger_config).values(key=key, config_version=version, value=value)
    stmt = stmt.on_conflict_do_update(
        index_elements=["key"],
        set_={
            "config_version": version,
            "value": stmt.excluded.value,
            "updated_at": stmt.excluded.updated_at,
        },
        where=ledger_config.c.config_version < version,
    )
    result = await session.execute(stmt.returning(ledger_config.c.key))
    return result.first() is not None
