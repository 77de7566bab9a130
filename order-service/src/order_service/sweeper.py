"""Background housekeeping: cancel orders left pending too long, purge expired idempotency keys."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from order_service.domain.orders import cancel_stale_orders
from order_service.settings import Settings
from paygate_common.db import unit_of_work
from paygate_common.idempotency import purge_expired_keys

log = logging.getLogger("order_service.sweeper")


async def sweep_once(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> int:
    """Cancel stale pending orders batch by batch (one transaction each); returns how many."""
    total = 0
    while True:
        async with unit_of_work(sessionmaker) as session:
            cancelled = await cancel_stale_orders(
                session=session,
                pending_timeout_seconds=settings.pending_timeout_seconds,
                batch_size=settings.sweep_batch_size,
            )
        total += len(cancelled)
        if len(cancelled) < settings.sweep_batch_size:
            return total


async def sweep_forever(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, stopping: asyncio.Event
) -> None:
    """Every `sweep_interval_seconds` until `stopping`; a failing pass is logged and retried."""
    last_purge = 0.0
    while not stopping.is_set():
        try:
            cancelled = await sweep_once(sessionmaker, settings)
            if cancelled:
                log.info("sweeper cancelled %d stale pending orders", cancelled)
            if time.monotonic() - last_purge >= settings.idempotency_purge_interval_seconds:
                purged = await purge_expired_keys(sessionmaker)
                last_purge = time.monotonic()
                if purged:
                    log.info("purged %d expired idempotency keys", purged)
        except Exception:
            # The database is having a moment; the next pass picks the same orders up.
            log.exception("order sweeper pass failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), settings.sweep_interval_seconds)
