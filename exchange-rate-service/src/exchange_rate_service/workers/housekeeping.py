"""Housekeeping loop: expired Idempotency-Key rows of `POST /fx/quotes` are purged in batches."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from paygate_common.idempotency import purge_expired_keys

log = logging.getLogger("exchange_rate_service.housekeeping")


async def purge_forever(
    sessionmaker: async_sessionmaker[AsyncSession], interval_seconds: float, stopping: asyncio.Event
) -> None:
    while not stopping.is_set():
        purged = await purge_expired_keys(sessionmaker)
        if purged:
            log.info("purged %d expired idempotency keys", purged)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), interval_seconds)
