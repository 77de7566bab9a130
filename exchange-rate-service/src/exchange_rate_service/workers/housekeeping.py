"""Housekeeping loop: expired Idempotency-Key rows of `POST /fx/quotes` are purged in batches."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from paygate_common.idempotency import purge_expired_keys
from paygate_common.worker import Worker

log = logging.getLogger("exchange_rate_service.housekeeping")


def purge_worker(sessionmaker: async_sessionmaker[AsyncSession], interval_seconds: float) -> Worker:
    """Every `interval_seconds`: delete the idempotency keys past their retention."""

    async def purge_pass() -> int:
        purged = await purge_expired_keys(sessionmaker)
        if purged:
            log.info("purged %d expired idempotency keys", purged)
        return 0  # `purge_expired_keys` drains every expired batch itself

    return Worker("idempotency purge", purge_pass, interval=interval_seconds)
