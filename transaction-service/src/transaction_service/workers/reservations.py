"""The reservation sweeper: gives back limit reservations whose order or payment never appeared."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from paygate_common.db import unit_of_work
from transaction_service.domain.limits import release_orphans
from transaction_service.settings import Settings

log = logging.getLogger("transaction_service.workers.reservations")


async def sweep_once(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> int:
    """One batch in one transaction; the number of reservations released."""
    async with unit_of_work(sessionmaker) as session:
        released = await release_orphans(
            session=session,
            older_than_seconds=settings.reservation_orphan_after_seconds,
            limit=settings.reservation_sweep_batch_size,
        )
    for reference_id in released:
        log.info("limit reservation %s released: no order or payment ever named it", reference_id)
    return len(released)


async def sweep_forever(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, stopping: asyncio.Event
) -> None:
    while not stopping.is_set():
        released = await sweep_once(sessionmaker, settings)
        if released < settings.reservation_sweep_batch_size:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), settings.reservation_sweep_interval_seconds)
