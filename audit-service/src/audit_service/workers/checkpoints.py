"""Signs the chain's head every `checkpoint_interval_seconds`, so a removed tail is detected."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from audit_service.settings import Settings
from audit_service.store.checkpoints import write_checkpoint
from paygate_common.db import unit_of_work
from paygate_common.worker import Worker

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


class CheckpointSigner(Worker):
    """Signs the head every `checkpoint_interval_seconds` on the shared worker loop, and once
    more on the way out, so a checkpoint covers what was appended since the previous one."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        super().__init__(
            "audit checkpoints", self.sign, interval=settings.checkpoint_interval_seconds
        )

    async def sign(self) -> int:
        await checkpoint_once(self.sessionmaker, self.settings)
        return 0  # one checkpoint per tick: never a "full batch" that asks for another at once

    async def run(self) -> None:
        await super().run()
        await checkpoint_once(self.sessionmaker, self.settings)
