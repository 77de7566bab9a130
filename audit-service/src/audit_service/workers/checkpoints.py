"""Signs the chain's head every `checkpoint_interval_seconds`, so a removed tail is detected."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from audit_service.settings import Settings
from audit_service.store.checkpoints import write_checkpoint
from paygate_common.db import unit_of_work

log = logging.getLogger("audit_service.checkpoints")


async def checkpoint_once(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    async with unit_of_work(sessionmaker) as session:
        checkpoint = await write_checkpoint(
            session, settings.checkpoint_key.get_secret_value().encode()
        )
    if checkpoint is not None:
        # Also in the logs, which live outside this database: a copy an attacker with database
        # access cannot rewrite together with the table.
        log.info(
            "audit checkpoint %s: %s records, head seq %s hash %s, signature %s",
            checkpoint["id"],
            checkpoint["record_count"],
            checkpoint["head_seq"],
            checkpoint["head_hash"],
            checkpoint["signature"],
        )


async def checkpoint_forever(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, stopping: asyncio.Event
) -> None:
    while not stopping.is_set():
        await checkpoint_once(sessionmaker, settings)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), settings.checkpoint_interval_seconds)
    # A last checkpoint on the way out covers what was appended since the previous one.
    await checkpoint_once(sessionmaker, settings)
