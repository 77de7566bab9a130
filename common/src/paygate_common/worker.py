"""One background loop for every service: claim due rows under a lease, work them, sleep until NOTIFY or a timer.

A service's background job (the payment executor, a reconciler, an expiry sweep, a notification
sender) is written as ONE function, `run_pass() -> int`, that opens its own unit of work(s),
claims at most a batch of due rows and works them, and returns how many it claimed. `Worker`
runs that function until stopped:

- a pass that claimed a full batch is followed at once by another (drain the backlog);
- otherwise the loop sleeps until the next timer tick (`interval`), a `wake()` from inside the
  process, or a PostgreSQL NOTIFY on `channel` (LISTEN on a connection of its own; if LISTEN is
  unavailable the timer alone keeps it working, at most `fallback_interval` apart);
- a pass that raises is logged with `describe_error` and retried after `backoff_delay`;
- `stop()` lets the current pass finish and ends the loop; `running(...)` starts several workers
  for a lifespan and stops them cleanly on exit.

`claim_due(...)` is the claim every such job needs: `UPDATE … SET lease_until = now() + lease
WHERE id IN (SELECT … WHERE due AND lease free … FOR UPDATE SKIP LOCKED) RETURNING *`, so
replicas never work the same row twice at once, and a row whose worker died is due again when
its lease runs out. `notify(session, channel)` wakes listeners when the caller's transaction
commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import ColumnElement, Row, Table, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from paygate_common.logging import mask

log = logging.getLogger("paygate.worker")

MAX_ERROR_CHARS = 500
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_random = random.Random()


def backoff_delay(
    attempt: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Capped exponential backoff with jitter: a value in [d/2, d], d = min(cap, base·2^(attempt-1)).

    The jitter spreads retries of many rows (or replicas) that failed together, so an outage of
    a provider or a database is not hammered in lockstep when it comes back.
    """
    ceiling = min(cap, base * 2 ** max(0, min(attempt, 62) - 1))
    return (rng or _random).uniform(ceiling / 2, ceiling)


def describe_error(exc: BaseException | None, *, limit: int = MAX_ERROR_CHARS) -> str:
    """`Type: message`, masked (card numbers, tokens, emails) and cut to `limit` characters.

    What is stored in an `error` column or logged about a failed row: never a secret, never a
    page of stack trace.
    """
    if exc is None:
        return ""
    message = str(exc).strip()
    described = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return mask(described)[:limit]


async def claim_due(
    session: AsyncSession | AsyncConnection,
    table: Table,
    *,
    limit: int,
    lease_seconds: float,
    where: Iterable[ColumnElement[bool]] = (),
    due_column: str = "next_attempt_at",
    lease_column: str = "lease_until",
    key_column: str = "id",
) -> Sequence[Row[Any]]:
    """Lease up to `limit` rows that are due (and match `where`); returns them.

    Runs in the caller's transaction; commit it before working the rows, so the lease is seen
    by every other worker while the slow part (a provider call, an SMTP send) runs.
    """
    due = table.c[due_column]
    lease = table.c[lease_column]
    key = table.c[key_column]
    candidates = (
        select(key)
        .where(*where, due <= func.now(), (lease.is_(None)) | (lease < func.now()))
        .order_by(due)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    stmt = (
        update(table)
        .where(key.in_(candidates))
        .values({lease_column: func.now() + func.make_interval(0, 0, 0, 0, 0, 0, lease_seconds)})
        .returning(*table.c)
    )
    return (await session.execute(stmt)).all()


async def notify(session: AsyncSession | AsyncConnection, channel: str) -> None:
    """Wake the workers LISTENing on `channel` when the caller's transaction commits."""
    if not _IDENTIFIER.match(channel):
        raise ValueError(f"invalid channel name {channel!r}")
    await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": channel})


class Worker:
    """Runs `run_pass` until stopped; see the module docstring for the loop's rules."""

    def __init__(
        self,
        name: str,
        run_pass: Callable[[], Awaitable[int]],
        *,
        interval: float,
        batch_size: int = 1,
        engine: AsyncEngine | None = None,
        channel: str | None = None,
        fallback_interval: float = 1.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
    ) -> None:
        if channel is not None and not _IDENTIFIER.match(channel):
            raise ValueError(f"invalid channel name {channel!r}")
        if channel is not None and engine is None:
            raise ValueError("LISTEN needs the engine whose database sends the NOTIFY")
        self.name = name
        self.run_pass = run_pass
        self.interval = interval
        self.batch_size = max(1, batch_size)
        self.engine = engine
        self.channel = channel
        self.fallback_interval = fallback_interval
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.passes = 0
        self.failures = 0
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._listener: asyncpg.Connection | None = None

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def listening(self) -> bool:
        """True while the LISTEN connection is up (a NOTIFY wakes the loop at once)."""
        return self._listener is not None and not self._listener.is_closed()

    def wake(self) -> None:
        """Ask for a pass now (a NOTIFY does this too)."""
        self._wakeup.set()

    async def stop(self) -> None:
        """End the loop after the current pass; `run()` returns soon after."""
        self._stopping.set()
        self._wakeup.set()

    async def run(self) -> None:
        try:
            while not self._stopping.is_set():
                await self._ensure_listening()
                self._wakeup.clear()
                try:
                    worked = await self.run_pass()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.failures += 1
                    delay = backoff_delay(
                        self.failures, base=self.backoff_base, cap=self.backoff_cap
                    )
                    log.error(
                        "%s pass failed (%d in a row; again in %.1fs): %s",
                        self.name,
                        self.failures,
                        delay,
                        describe_error(exc),
                        exc_info=exc,
                    )
                    await self._sleep(delay, wakeable=False)
                    continue
                self.failures = 0
                self.passes += 1
                if worked >= self.batch_size:
                    continue  # a full batch: there is probably more, do not wait
                await self._sleep(self._idle_timeout(), wakeable=True)
        finally:
            await self._close_listener()

    def _idle_timeout(self) -> float:
        if self.channel is not None and not self.listening:
            return min(self.interval, self.fallback_interval)
        return self.interval

    async def _sleep(self, seconds: float, *, wakeable: bool) -> None:
        waiter = self._wakeup if wakeable else self._stopping
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter.wait(), seconds)

    async def _ensure_listening(self) -> None:
        if self.channel is None or self.listening:
            return
        assert self.engine is not None
        url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            conn = await asyncpg.connect(
                url, timeout=5, server_settings={"application_name": f"worker-{self.name}"[:63]}
            )
            await conn.add_listener(self.channel, self._on_notify)
        except Exception as exc:  # the timer keeps the worker going until LISTEN is back
            log.warning("%s cannot LISTEN (%s); polling", self.name, describe_error(exc))
            self._listener = None
            return
        self._listener = conn

    def _on_notify(self, *_: Any) -> None:
        self._wakeup.set()

    async def _close_listener(self) -> None:
        conn, self._listener = self._listener, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)


@asynccontextmanager
async def running(
    workers: Sequence[Worker], *, stop_timeout: float = 10.0
) -> AsyncIterator[list[asyncio.Task[None]]]:
    """Run `workers` as tasks for the block (a lifespan); on exit stop them and wait.

    A worker that does not finish its pass within `stop_timeout` is cancelled: whatever it held
    is leased, not locked, so another replica (or the next start) takes it over.
    """
    tasks = [asyncio.create_task(w.run(), name=f"worker-{w.name}") for w in workers]
    try:
        yield tasks
    finally:
        for worker in workers:
            await worker.stop()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=stop_timeout)
            for task in pending:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            for worker, result in zip(workers, results, strict=True):
                if isinstance(result, Exception):
                    log.error("%s ended with %s", worker.name, describe_error(result))


__all__ = [
    "Worker",
    "backoff_delay",
    "claim_due",
    "describe_error",
    "notify",
    "running",
]
