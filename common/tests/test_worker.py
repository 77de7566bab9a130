"""The shared worker loop against real PostgreSQL: leases, SKIP LOCKED, NOTIFY wake-up, clean stop."""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    func,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from paygate_common.db import create_engine, create_sessionmaker, unit_of_work
from paygate_common.settings import ServiceSettings
from paygate_common.worker import (
    Worker,
    backoff_delay,
    claim_due,
    describe_error,
    notify,
    running,
)
from paygate_devstack.events_testing import wait_for

metadata = MetaData()
jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("state", String(16), nullable=False, server_default=text("'due'")),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("lease_until", DateTime(timezone=True), nullable=True),
    Column("worked_by", String(16), nullable=True),
)


class _Settings(ServiceSettings):
    service_name: ClassVar[str] = "worker-test"


@pytest.fixture(scope="module")
async def database_url(postgres: Any) -> str:
    return str(await postgres.acreate_database())


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    schema = f"wk_{secrets.token_hex(4)}"
    engine = create_engine(_Settings(database_url=database_url, db_schema=schema, db_pool_size=6))
    async with engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        await conn.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


async def add_jobs(sessionmaker: async_sessionmaker[AsyncSession], ids: range) -> None:
    async with unit_of_work(sessionmaker) as session:
        await session.execute(jobs.insert(), [{"id": i} for i in ids])


async def states(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[int, str]:
    async with sessionmaker() as session:
        rows = (await session.execute(select(jobs.c.id, jobs.c.state))).all()
    return {r.id: r.state for r in rows}


def test_backoff_grows_is_capped_and_jittered() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(n, base=1.0, cap=8.0, rng=rng) for n in range(1, 8)]
    assert 0.5 <= delays[0] <= 1.0
    assert 2.0 <= delays[2] <= 4.0
    assert all(4.0 <= d <= 8.0 for d in delays[3:])
    assert len({round(d, 6) for d in delays[3:]}) > 1  # jittered, not lockstep
    assert backoff_delay(10_000, base=1.0, cap=8.0) <= 8.0


def test_describe_error_masks_and_cuts() -> None:
    exc = RuntimeError("card 4242424242424242 refused " + "x" * 1000)
    described = describe_error(exc, limit=120)
    assert described.startswith("RuntimeError: ")
    assert "4242424242424242" not in described
    assert len(described) == 120
    assert describe_error(TimeoutError()) == "TimeoutError"


async def test_two_claimers_never_lease_the_same_row(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await add_jobs(sessionmaker, range(1, 21))
    first_claimed = asyncio.Event()
    release_first = asyncio.Event()

    async def first() -> set[int]:
        async with unit_of_work(sessionmaker) as session:
            rows = await claim_due(session, jobs, limit=10, lease_seconds=30)
            first_claimed.set()
            await release_first.wait()  # still holding the row locks
        return {r.id for r in rows}

    task = asyncio.create_task(first())
    await first_claimed.wait()
    async with unit_of_work(sessionmaker) as session:
        second = {r.id for r in await claim_due(session, jobs, limit=20, lease_seconds=30)}
    release_first.set()
    first_ids = await task
    assert len(first_ids) == 10 and len(second) == 10
    assert first_ids.isdisjoint(second)
    # Both leases are committed: nothing is due until they run out.
    async with unit_of_work(sessionmaker) as session:
        assert await claim_due(session, jobs, limit=20, lease_seconds=30) == []


async def test_an_expired_lease_makes_the_row_due_again_and_where_filters(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await add_jobs(sessionmaker, range(1, 4))
    async with unit_of_work(sessionmaker) as session:
        await session.execute(update(jobs).where(jobs.c.id == 3).values(state="done"))
        leased = await claim_due(
            session, jobs, limit=10, lease_seconds=0.2, where=[jobs.c.state == "due"]
        )
    assert sorted(r.id for r in leased) == [1, 2]

    async def again() -> list[int] | None:
        async with unit_of_work(sessionmaker) as session:
            rows = await claim_due(
                session, jobs, limit=10, lease_seconds=30, where=[jobs.c.state == "due"]
            )
        return sorted(r.id for r in rows) or None

    assert await wait_for(again, timeout=10) == [1, 2]


async def test_a_worker_drains_a_backlog_in_batches_and_stops_cleanly(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await add_jobs(sessionmaker, range(1, 26))

    async def run_pass() -> int:
        async with unit_of_work(sessionmaker) as session:
            rows = await claim_due(
                session, jobs, limit=10, lease_seconds=30, where=[jobs.c.state == "due"]
            )
            ids = [r.id for r in rows]
            if ids:
                await session.execute(update(jobs).where(jobs.c.id.in_(ids)).values(state="done"))
        return len(ids)

    # A long timer: only draining (a full batch runs the next pass at once) gets it done fast.
    worker = Worker("drain", run_pass, interval=60, batch_size=10)
    started = time.monotonic()
    async with running([worker]) as tasks:
        await wait_for(lambda: _all_done(sessionmaker, 25), timeout=20)
    assert time.monotonic() - started < 20
    assert all(t.done() for t in tasks)
    assert worker.passes >= 3


async def _all_done(sessionmaker: async_sessionmaker[AsyncSession], count: int) -> bool:
    values = await states(sessionmaker)
    return len(values) == count and set(values.values()) == {"done"}


async def test_a_notify_wakes_an_idle_worker_long_before_its_timer(
    engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    channel = f"wk_test_{secrets.token_hex(3)}"
    passes: list[float] = []

    async def run_pass() -> int:
        passes.append(time.monotonic())
        return 0

    worker = Worker("notified", run_pass, interval=60, engine=engine, channel=channel)
    async with running([worker]):
        await wait_for(lambda: worker.listening and len(passes) >= 1, timeout=15)
        before = len(passes)
        sent = time.monotonic()
        async with unit_of_work(sessionmaker) as session:
            await notify(session, channel)
        await wait_for(lambda: len(passes) > before, timeout=15)
    assert passes[before] - sent < 10  # the timer says 60 s


async def test_a_failing_pass_is_retried_with_backoff_and_the_loop_survives(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    calls = 0

    async def run_pass() -> int:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise ConnectionError("database restarting")
        return 0

    worker = Worker("flaky", run_pass, interval=60, backoff_base=0.05, backoff_cap=0.1)
    async with running([worker]):
        await wait_for(lambda: worker.passes >= 1, timeout=15)
    assert calls == 3 and worker.failures == 0


async def test_stop_ends_a_sleeping_worker_at_once() -> None:
    async def run_pass() -> int:
        return 0

    worker = Worker("sleepy", run_pass, interval=3600)
    task = asyncio.create_task(worker.run())
    await wait_for(lambda: worker.passes >= 1, timeout=10)
    await worker.stop()
    await asyncio.wait_for(task, timeout=5)
    assert task.done() and task.exception() is None


def test_channel_names_are_checked() -> None:
    async def run_pass() -> int:
        return 0

    with pytest.raises(ValueError):
        Worker("bad", run_pass, interval=1, channel="drop table;", engine=None)
