"""Alembic helpers: each service migrates its own schema and keeps its version table there."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from paygate_common.settings import ServiceSettings


def run_env(settings: ServiceSettings, target_metadata: MetaData | None = None) -> None:
    """The body of a service's `env.py`: online migrations into `settings.db_schema`."""
    overrides = context.config.attributes
    database_url = overrides.get("database_url") or settings.database_url
    schema = overrides.get("db_schema") or settings.db_schema

    def do_run(connection: Connection) -> None:
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        connection.execute(text(f'SET search_path TO "{schema}"'))
        connection.commit()
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table_schema=schema,
            include_schemas=False,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run_async() -> None:
        engine = create_async_engine(database_url, poolclass=pool.NullPool)
        async with engine.connect() as conn:
            await conn.run_sync(do_run)
        await engine.dispose()

    if context.is_offline_mode():
        context.configure(
            url=database_url,
            target_metadata=target_metadata,
            version_table_schema=schema,
            literal_binds=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(run_async())


def upgrade_head(
    alembic_ini: str | Path, *, database_url: str | None = None, db_schema: str | None = None
) -> None:
    """Programmatic `alembic upgrade head`; without overrides, settings come from the env.

    It runs its own event loop: from async code call it with `asyncio.to_thread`.
    """
    cfg = Config(str(alembic_ini))
    cfg.set_main_option("script_location", str(Path(alembic_ini).parent / "migrations"))
    if database_url:
        cfg.attributes["database_url"] = database_url
    if db_schema:
        cfg.attributes["db_schema"] = db_schema
    command.upgrade(cfg, "head")
