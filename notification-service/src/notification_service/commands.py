"""Operator commands: `notification-service-reencrypt` re-wraps every secret at rest under the
active key-encryption key (run after adding a new key and making it active)."""

from __future__ import annotations

import asyncio
import sys

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notification_service.domain.preferences import reencrypt_push_secrets
from notification_service.domain.webhooks import reencrypt_secrets
from notification_service.settings import Settings
from paygate_common.crypto import EnvelopeCipher
from paygate_common.db import create_engine, create_sessionmaker, unit_of_work


async def reencrypt_all(
    sessionmaker: async_sessionmaker[AsyncSession], cipher: EnvelopeCipher
) -> dict[str, int]:
    """One transaction: every sealed value ends up under the active key, or none does."""
    async with unit_of_work(sessionmaker) as session:
        endpoints = await reencrypt_secrets(session=session, cipher=cipher)
        subscriptions = await reencrypt_push_secrets(session=session, cipher=cipher)
    return {"webhook_endpoints": endpoints, "push_subscriptions": subscriptions}


async def _main() -> int:
    settings = Settings()
    engine = create_engine(settings)
    try:
        counts = await reencrypt_all(create_sessionmaker(engine), settings.cipher())
    finally:
        await engine.dispose()
    print(
        f"re-encrypted under {settings.encryption_key_id!r}: "
        + ", ".join(f"{n} {what}" for what, n in counts.items())
    )
    return 0


def reencrypt() -> None:
    """The `notification-service-reencrypt` console script."""
    sys.exit(asyncio.run(_main()))


if __name__ == "__main__":
    reencrypt()
