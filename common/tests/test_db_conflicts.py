"""Two transactions that deadlock on real PostgreSQL: the loser runs again and both land once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from paygate_common.db import retrying_unit_of_work, unit_of_work
from paygate_common.errors import install_error_handlers


async def _accounts(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with unit_of_work(sessionmaker) as session:
        await session.execute(
            text("CREATE TABLE IF NOT EXISTS balances (id int PRIMARY KEY, n int)")
        )
        await session.execute(text("TRUNCATE balances"))
        await session.execute(text("INSERT INTO balances VALUES (1, 0), (2, 0)"))


def _crossing(first: int, second: int, both_hold_one: asyncio.Barrier, runs: list[int]) -> Any:
    """Lock `first`, wait until the other side holds its row, then lock `second`: a deadlock."""

    async def work(session: AsyncSession) -> None:
        runs.append(first)
        await session.execute(text("UPDATE balances SET n = n + 1 WHERE id = :i"), {"i": first})
        if len(runs) <= 2:  # only the first run of each side waits for the crossing
            await both_hold_one.wait()
        await session.execute(text("UPDATE balances SET n = n + 1 WHERE id = :i"), {"i": second})

    return work


async def test_a_deadlocked_transaction_runs_again_and_both_apply_once(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await _accounts(sessionmaker)
    barrier, runs = asyncio.Barrier(2), []
    await asyncio.wait_for(
        asyncio.gather(
            retrying_unit_of_work(sessionmaker, _crossing(1, 2, barrier, runs)),
            retrying_unit_of_work(sessionmaker, _crossing(2, 1, barrier, runs)),
        ),
        timeout=60,
    )
    assert len(runs) == 3  # PostgreSQL aborted exactly one side, which ran again
    async with sessionmaker() as session:
        rows = (await session.execute(text("SELECT id, n FROM balances ORDER BY id"))).all()
    assert [tuple(r) for r in rows] == [(1, 2), (2, 2)]  # each side's two updates, once


async def test_a_conflict_a_request_could_not_retry_is_a_503_problem_not_a_500(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await _accounts(sessionmaker)
    barrier, runs = asyncio.Barrier(2), []
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/move/{first}/{second}")
    async def move(first: int, second: int) -> dict[str, bool]:
        async with unit_of_work(sessionmaker) as session:  # no retry: the loser's error surfaces
            await _crossing(first, second, barrier, runs)(session)
        return {"moved": True}

    # The 500 handler runs in ServerErrorMiddleware, which re-raises after answering.
    transport = ASGITransport(app=app, raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://t") as client:
        answers = await asyncio.wait_for(
            asyncio.gather(client.post("/move/1/2"), client.post("/move/2/1")), timeout=60
        )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 503]
    lost = next(a for a in answers if a.status_code == 503)
    assert lost.json()["code"] == "transaction_conflict" and lost.headers["retry-after"] == "1"
    assert lost.headers["content-type"].startswith("application/problem+json")


async def test_other_database_errors_are_not_retried(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    runs: list[int] = []

    async def broken(session: AsyncSession) -> None:
        runs.append(1)
        await session.execute(text("SELECT * FROM no_such_table"))

    with pytest.raises(DBAPIError):
        await retrying_unit_of_work(sessionmaker, broken)
    assert runs == [1]
