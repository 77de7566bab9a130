"""Start-up catch-up: the ledger's configuration as admin-service holds it now."""

from __future__ import annotations

import contextlib
import logging

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from paygate_common.db import unit_of_work
from paygate_common.http import ServiceClient
from paygate_common.internal.config import CONFIG_PATH, ConfigRead
from transaction_service.events.handlers import CONFIG_VALIDATORS
from transaction_service.settings import Settings
from transaction_service.store import config as config_store

log = logging.getLogger("transaction_service.config")


async def load_config_from_admin(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> list[str]:
    """Store each ledger key's current version from admin-service if it is newer than ours.

    `config.changed` keeps the ledger current while it runs; this covers what was decided
    while it was not subscribed (a new deployment, a lost topic). admin-service down or a
    key never set: the stored (last known) value or the settings' default stays, and the
    service starts anyway. Returns the keys that changed.
    """
    changed: list[str] = []
    client = ServiceClient(settings, target="admin", timeout=2.0, retries=0)
    async with contextlib.aclosing(client):
        for key, validate in CONFIG_VALIDATORS.items():
            try:
                response = await client.get(CONFIG_PATH.format(key=key))
            except Exception as exc:  # any transport failure: keep the last known value
                log.warning("config %s: admin-service unreachable (%s)", key, type(exc).__name__)
                continue
            if response.status_code != 200:
                if response.status_code != 404:
                    log.warning("config %s: admin-service answered %s", key, response.status_code)
                continue
            try:
                answer = ConfigRead.model_validate_json(response.content)
            except ValidationError:
                log.error("config %s: admin-service answered outside ConfigRead", key)
                continue
            if answer.version < 1:
                continue  # never set by an operator: our own settings' defaults apply
            try:
                validate(answer.value)
            except Exception as exc:  # never start with a value the ledger cannot apply
                log.error(
                    "config %s version %s from admin-service refused: %s", key, answer.version, exc
                )
                continue
            async with unit_of_work(sessionmaker) as session:
                stored = await config_store.save_config(
                    session, key=key, version=answer.version, value=answer.value
                )
            if stored:
                log.info("config %s version %s loaded from admin-service", key, answer.version)
                changed.append(key)
    return changed
