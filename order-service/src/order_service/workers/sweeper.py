"""Background housekeeping: cancel orders left pending too long, purge expired idempotency keys."""

from __future__ import annotations

import logging
import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from order_service.domain.orders import cancel_stale_orders
from order_service.settings import Settings
from paygate_common.db import unit_of_work
from paygate_common.idempotency import purge_expired_keys
from paygate_common.worker import Worker

log = logging.getLogger("order_service.sweeper")


class Sweeper:
    """One pass: cancel stale pending orders batch by batch, and now and then purge old keys."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self._last_purge = 0.0

    async def cancel_stale(self) -> int:
        """Stale pending orders cancelled, one transaction per batch; returns how many."""
        total = 0
        while True:
            async with unit_of_work(self.sessionmaker) as session:
                cancelled = await cancel_stale_orders(
                    session=session,
                    pending_timeout_seconds=self.settings.pending_timeout_seconds,
                    batch_size=self.settings.sweep_batch_size,
                )
            total += len(cancelled)
            if len(cancelled) < self.settings.sweep_batch_size:
                return total

    async def run_pass(self) -> int:
        cancelled = await self.cancel_stale()
        if cancelled:
            log.info("sweeper cancelled %d stale pending orders", cancelled)
        if time.monotonic() - self._last_purge >= self.settings.idempotency_purge_interval_seconds:
            purged = await purge_expired_keys(self.sessionmaker)
            self._last_purge = time.monotonic()
            if purged:
                log.info("purged %d expired idempotency keys", purged)
        # everything due was drained above: the worker sleeps until the next interval
        return 0


def sweeper_worker(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> Worker:
    return Worker(
        "order sweeper",
        Sweeper(sessionmaker, settings).run_pass,
        interval=settings.sweep_interval_seconds,
    )
