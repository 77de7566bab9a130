"""Async SQLAlchemy engine per service schema, and one unit of work per request or batch."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from sqlalchemy import MetaData, event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from paygate_common.settings import ServiceSettings

# Stable constraint names make hand-written migrations and their downgrades predictable.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    """Tables carry no schema: the connection's search_path puts them in the service's schema."""
    return MetaData(naming_convention=NAMING_CONVENTION)


class Base(DeclarativeBase):
    """Declarative base for service models; each service may subclass with its own metadata."""

    metadata = new_metadata()


def create_engine(settings: ServiceSettings, **overrides: Any) -> AsyncEngine:
    """An asyncpg engine whose connections live in the service's schema (search_path)."""
    connect_args = {
        "server_settings": {
            "search_path": settings.db_schema,
            "application_name": settings.service_name,
        }
    }
    options: dict[str, Any] = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_pool_size,
        # No pre-ping: it is one more round trip per unit of work (~10% of a consumer's CPU
        # under load). A connection that died is invalidated by the error it raises, the unit
        # of work fails like any other database error, and the pool replaces it.
        "pool_pre_ping": False,
        "pool_recycle": 1800,
        "echo": settings.db_echo,
        "connect_args": connect_args,
    }
    options.update(overrides)
    return create_async_engine(settings.database_url, **options)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def unit_of_work(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One transaction: committed when the block succeeds, rolled back when it raises."""
    async with sessionmaker() as session, session.begin():
        yield session


# deadlock_detected, serialization_failure: PostgreSQL aborted one of two transactions that
# waited on each other; running the loser again (a fresh transaction) is the documented cure.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
T = TypeVar("T")


def is_transaction_conflict(exc: BaseException) -> bool:
    """A deadlock or serialization failure: the transaction may simply be run again."""
    orig = getattr(exc, "orig", None)
    return isinstance(exc, DBAPIError) and getattr(orig, "sqlstate", None) in RETRYABLE_SQLSTATES


async def retrying_unit_of_work(
    sessionmaker: async_sessionmaker[AsyncSession],
    work: Callable[[AsyncSession], Awaitable[T]],
    *,
    attempts: int = 3,
) -> T:
    """`work` in one transaction, run again when PostgreSQL aborted it for a conflict.

    Only for work that is safe to repeat from the start (guarded state transitions: the second
    run finds what the winner did). Anything else raises at once.
    """
    for attempt in range(1, attempts + 1):
        try:
            async with unit_of_work(sessionmaker) as session:
                return await work(session)
        except DBAPIError as exc:
            if attempt == attempts or not is_transaction_conflict(exc):
                raise
            await asyncio.sleep(random.uniform(0.005, 0.05) * attempt)
    raise AssertionError("unreachable")


@asynccontextmanager
async def autocommit(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A session whose statements each commit on their own: one round trip per statement.

    For work that is one statement anyway (an idempotency claim, its release): no BEGIN and
    COMMIT round trips around it. The pool resets the connection's isolation level on return.
    """
    async with sessionmaker() as session:
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        yield session


def after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Call `callback` (sync, quick: a wake-up) once the session's transaction has committed.

    For hints that must not run before the data is visible, e.g. waking a worker that will
    claim the rows just written. Not called on rollback; a callback registered inside a
    SAVEPOINT that was rolled back still runs at the outer commit, so it must be harmless.
    """
    event.listen(session.sync_session, "after_commit", lambda _session: callback(), once=True)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """FastAPI dependency: the request's unit of work, opened and committed at the edge."""
    async with unit_of_work(request.app.state.sessionmaker) as session:
        yield session


# scope="function": the unit of work commits BEFORE the response is sent. With FastAPI's default
# ("request") scope the commit would run after the client already holds its 201, so an
# immediate GET could 404, or a failed commit could contradict the answer.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


def sync_url(async_url: str) -> str:
    """Alembic runs through the async engine too, but some tools want a plain driver URL."""
    return async_url.replace("+asyncpg", "")
