"""The reservation sweeper: gives back limit reservations whose order or payment never appeared."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from paygate_common.db import unit_of_work
from paygate_common.worker import Worker
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


def reservation_sweeper(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> Worker:
    """A full batch is followed at once by the next; otherwise it waits for the interval."""
    return Worker(
        "reservation sweeper",
        lambda: sweep_once(sessionmaker, settings),
        interval=settings.reservation_sweep_interval_seconds,
        batch_size=settings.reservation_sweep_batch_size,
    )
