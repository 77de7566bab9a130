"""Inserting a row whose unique constraint may lose a race, without spoiling the transaction."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from user_service.store.tables import UserServiceBase


async def insert_unique(
    session: AsyncSession, row: UserServiceBase, *, constraint: str, conflict: Exception
) -> None:
    """Flush `row` in a savepoint; raise `conflict` if `constraint` refused it.

    The savepoint keeps the outer transaction usable, so the caller can still answer cleanly.
    """
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError as exc:
        if constraint in str(exc.orig):
            raise conflict from None
        raise
    await session.refresh(row)
