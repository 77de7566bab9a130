"""The outbox relay: claims pending rows, publishes them to Kafka, records the outcome."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from paygate_common.kafka import to_kafka_headers
from paygate_common.logging import mask
from paygate_common.metrics import EVENTS_PUBLISHED, OUTBOX_PENDING
from paygate_common.outbox.retention import RetentionPolicy, purge_processed
from paygate_common.outbox.writer import channel_for_schema

log = logging.getLogger("paygate.outbox")

# Oldest first, at most one row per key per pass: a row waits while an older row with the same
# key is still pending (in backoff, or being published by another relay), so a failed publish
# never lets a later event of the same aggregate overtake it. SKIP LOCKED lets replicas share.
_CLAIM = text(
    """
    SELECT o.id, o.event_id, o.topic, o.key, o.payload, o.headers, o.attempts
    FROM outbox AS o
    WHERE o.state = 'pending'
      AND o.available_at <= now()
      AND NOT EXISTS (
        SELECT 1 FROM outbox AS e
        WHERE e.state = 'pending' AND e.key = o.key AND e.id < o.id
      )
    ORDER BY o.id
    LIMIT :limit
    FOR UPDATE OF o SKIP LOCKED
    """
)
_MARK_PUBLISHED = text(
    """
    UPDATE outbox
    SET state = 'published', published_at = now(), attempts = attempts + 1, last_error = NULL
    WHERE id = ANY(:ids)
    """
)
_MARK_FAILED = text(
    """
    UPDATE outbox
    SET attempts = attempts + 1,
        last_error = :error,
        available_at = now() + make_interval(secs => :delay),
        state = CASE WHEN :give_up THEN 'failed' ELSE 'pending' END
    WHERE id = :id
    """
)
_PENDING_STATS = text(
    """
    SELECT count(*), EXTRACT(EPOCH FROM min(available_at) - now())
    FROM outbox WHERE state = 'pending'
    """
)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


@dataclass(frozen=True)
class OutboxRow:
    id: int
    event_id: Any
    topic: str
    key: str | None
    payload: dict[str, Any]
    headers: dict[str, str]
    attempts: int


@dataclass(frozen=True)
class PublishFailure:
    row: OutboxRow
    error: str


class OutboxRelay:
    """Publishes pending outbox rows to Kafka: woken by NOTIFY, with a polling fallback.

    At-least-once: a row is marked published in the transaction that locked it, after Kafka
    acknowledged it, so a crash in between publishes it again (consumers dedupe by event id).
    A failed publish is retried with exponential backoff; rows are never dropped (`fail_after`,
    off by default, parks rows that keep failing in state `failed` for an operator).
    """

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        producer: AIOKafkaProducer,
        service: str,
        channel: str | None = None,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        max_backoff: float = 30.0,
        backoff_base: float = 0.5,
        publish_timeout: float = 20.0,
        fail_after: int | None = None,
        retention: RetentionPolicy | None = None,
    ) -> None:
        self.engine = engine
        self.retention = retention or RetentionPolicy()
        self._next_purge_at = 0.0
        self.producer = producer
        self.service = service
        self.channel = channel
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        self.backoff_base = backoff_base
        self.publish_timeout = publish_timeout
        self.fail_after = fail_after
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._listener: asyncpg.Connection | None = None
        self._next_retry_in: float | None = None

    # -- one pass ----------------------------------------------------------------------------

    async def publish_pending(self) -> int:
        """One pass: claim up to `batch_size` rows, publish them, record the outcome.

        Returns how many rows were published.
        """
        async with self.engine.begin() as conn:
            result = await conn.execute(_CLAIM, {"limit": self.batch_size})
            rows = [OutboxRow(*r) for r in result.all()]
            if not rows:
                return 0
            published, failures = await self._publish(rows)
            await self._mark(conn, published, failures)
        for row in published:
            EVENTS_PUBLISHED.labels(self.service, row.topic).inc()
        for failure in failures:
            log.warning(
                "outbox publish failed (event %s, attempt %d): %s",
                failure.row.event_id,
                failure.row.attempts + 1,
                failure.error,
            )
        return len(published)

    async def _publish(
        self, rows: Sequence[OutboxRow]
    ) -> tuple[list[OutboxRow], list[PublishFailure]]:
        """Send every row, then wait for every acknowledgement (one batch, one round trip)."""
        futures: list[asyncio.Future[Any] | None] = []
        errors: list[str | None] = []

        async def send_all() -> None:
            for row in rows:
                try:
                    fut = await self.producer.send(
                        row.topic,
                        value=orjson.dumps(row.payload),
                        key=row.key.encode() if row.key is not None else None,
                        headers=to_kafka_headers(row.headers),
                    )
                except Exception as exc:  # the buffer refused it; record and keep going
                    futures.append(None)
                    errors.append(_describe(exc))
                else:
                    futures.append(fut)
                    errors.append(None)

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(send_all(), self.publish_timeout)
        # Rows the timeout cut off before they were even handed to the producer.
        while len(futures) < len(rows):
            futures.append(None)
            errors.append("TimeoutError: producer did not accept the message")

        pending = [f for f in futures if f is not None]
        if pending:
            await asyncio.wait(pending, timeout=self.publish_timeout)

        published: list[OutboxRow] = []
        failures: list[PublishFailure] = []
        for row, fut, error in zip(rows, futures, errors, strict=True):
            if fut is None:
                failures.append(PublishFailure(row, error or "not sent"))
            elif not fut.done():
                # The ack did not come in time; the message may still arrive (at-least-once).
                failures.append(PublishFailure(row, "TimeoutError: no acknowledgement from Kafka"))
            elif fut.cancelled():
                failures.append(PublishFailure(row, "CancelledError: send cancelled"))
            elif fut.exception() is not None:
                failures.append(PublishFailure(row, _describe(fut.exception())))
            else:
                published.append(row)
        return published, failures

    async def _mark(
        self,
        conn: AsyncConnection,
        published: Sequence[OutboxRow],
        failures: Sequence[PublishFailure],
    ) -> None:
        """Record the outcome in the transaction that holds the rows' locks."""
        if published:
            await conn.execute(_MARK_PUBLISHED, {"ids": [r.id for r in published]})
        if failures:
            await conn.execute(
                _MARK_FAILED,
                [
                    {
                        "id": f.row.id,
                        "error": f.error[:2000],
                        "delay": self.backoff_for(f.row.attempts + 1),
                        "give_up": self.fail_after is not None
                        and f.row.attempts + 1 >= self.fail_after,
                    }
                    for f in failures
                ],
            )

    def backoff_for(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th failed publish of a row."""
        return float(min(self.max_backoff, self.backoff_base * 2 ** max(0, attempts - 1)))

    async def refresh_pending_metric(self) -> int:
        """Update `paygate_outbox_pending`; remembers when the next backed-off row is due."""
        async with self.engine.connect() as conn:
            count, due_in = (await conn.execute(_PENDING_STATS)).one()
        OUTBOX_PENDING.labels(self.service).set(count)
        self._next_retry_in = None if due_in is None else max(0.0, float(due_in))
        return int(count)

    # -- the loop ----------------------------------------------------------------------------

    @property
    def listening(self) -> bool:
        """True while the LISTEN connection is up (NOTIFY wakes the loop)."""
        return self._listener is not None and not self._listener.is_closed()

    def wake(self) -> None:
        """Ask the loop for a pass now (NOTIFY does this; tests and callers may too)."""
        self._wakeup.set()

    async def run(self) -> None:
        """Publish until `stop()`: a pass on every NOTIFY, and at least every `poll_interval`."""
        if self.channel is None:
            self.channel = await self._current_channel()
        try:
            while not self._stopping.is_set():
                await self._ensure_listening()
                self._wakeup.clear()
                try:
                    while not self._stopping.is_set() and await self.publish_pending() > 0:
                        self._wakeup.clear()  # whatever NOTIFY said, the next pass sees it
                    await self.refresh_pending_metric()
                    if asyncio.get_running_loop().time() >= self._next_purge_at:
                        await purge_processed(self.engine, self.retention)
                        self._next_purge_at = (
                            asyncio.get_running_loop().time() + self.retention.interval_seconds
                        )
                except Exception:
                    # The database or the producer is having a moment: log, wait, try again.
                    log.exception("outbox relay pass failed")
                    self._next_retry_in = min(self.poll_interval, self.max_backoff)
                await self._sleep(self._idle_timeout())
        finally:
            await self._close_listener()

    async def stop(self) -> None:
        self._stopping.set()
        self._wakeup.set()

    def _idle_timeout(self) -> float:
        timeout = self.poll_interval
        if self._next_retry_in is not None:
            timeout = min(timeout, self._next_retry_in + 0.01)
        if self._listener is None or self._listener.is_closed():
            # Without LISTEN the poll is the only way to notice new rows: keep it short.
            timeout = min(timeout, 1.0)
        return timeout

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), seconds)

    async def _current_channel(self) -> str:
        async with self.engine.connect() as conn:
            schema = (await conn.execute(text("SELECT current_schema()"))).scalar_one()
        return channel_for_schema(schema)

    async def _ensure_listening(self) -> None:
        if self._listener is not None and not self._listener.is_closed():
            return
        assert self.channel is not None
        if not _IDENTIFIER.match(self.channel):
            raise ValueError(f"invalid outbox channel name {self.channel!r}")
        url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            conn = await asyncpg.connect(
                url,
                timeout=5,
                server_settings={"application_name": f"{self.service}-outbox-relay"},
            )
            await conn.add_listener(self.channel, self._on_notify)
        except Exception as exc:  # polling keeps the relay working until LISTEN is back
            log.warning("outbox relay cannot LISTEN (%s); polling", _describe(exc))
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


def _describe(exc: BaseException | None) -> str:
    return mask(f"{type(exc).__name__}: {exc}")
