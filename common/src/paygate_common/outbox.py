"""Transactional outbox: event rows written with the state change, published later by a relay."""

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
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.sql.elements import conv
from sqlalchemy.sql.schema import SchemaItem

from paygate_common.events.envelope import EventEnvelope
from paygate_common.kafka import envelope_headers, to_kafka_headers
from paygate_common.logging import mask
from paygate_common.metrics import EVENTS_PUBLISHED, OUTBOX_PENDING

log = logging.getLogger("paygate.outbox")

OUTBOX_TABLE = "outbox"
INBOX_TABLE = "inbox"
OUTBOX_STATES = ("pending", "published", "failed")
INBOX_OUTCOMES = ("applied", "dead_lettered")
CHANNEL_PREFIX = "paygate_outbox_"  # spelled out in _INSERT_EVENTS too

_PENDING = text("state = 'pending'")


# --- tables ------------------------------------------------------------------------------------


def _outbox_columns() -> list[SchemaItem]:
    # Fresh objects on every call: the same definition feeds MetaData and alembic's create_table.
    return [
        Column("id", BigInteger, autoincrement=True, nullable=False),
        Column("event_id", Uuid, nullable=False),
        Column("topic", Text, nullable=False),
        # The Kafka key (the aggregate id): one aggregate's events land on one partition, in order.
        Column("key", Text, nullable=True),
        Column("event_type", Text, nullable=False),
        Column("payload", JSONB, nullable=False),  # the whole envelope
        Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
        Column("state", Text, nullable=False, server_default=text("'pending'")),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Column("last_error", Text, nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        # Retry backoff: a row whose publish failed waits until then.
        Column("available_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True), nullable=True),
        PrimaryKeyConstraint("id", name=conv("pk_outbox")),
        UniqueConstraint("event_id", name=conv("uq_outbox_event_id")),
        CheckConstraint(
            "state IN ('pending', 'published', 'failed')", name=conv("ck_outbox_state")
        ),
    ]


def _inbox_columns() -> list[SchemaItem]:
    return [
        Column("consumer", Text, nullable=False),
        Column("event_id", Uuid, nullable=False),
        Column("outcome", Text, nullable=False, server_default=text("'applied'")),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("consumer", "event_id", name=conv("pk_inbox")),
        CheckConstraint("outcome IN ('applied', 'dead_lettered')", name=conv("ck_inbox_outcome")),
    ]


# (name, columns) of the partial indexes; the relay's claim query reads only pending rows.
_OUTBOX_INDEXES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ix_outbox_pending", ("id",)),
    ("ix_outbox_pending_key", ("key", "id")),
)


def outbox_tables(metadata: MetaData) -> tuple[Table, Table]:
    """Add the `outbox` and `inbox` tables to a service's metadata; returns (outbox, inbox)."""
    outbox = Table(OUTBOX_TABLE, metadata, *_outbox_columns())
    for name, columns in _OUTBOX_INDEXES:
        Index(conv(name), *(outbox.c[c] for c in columns), postgresql_where=_PENDING)
    inbox = Table(INBOX_TABLE, metadata, *_inbox_columns())
    return outbox, inbox


def create_outbox_tables(op: Any) -> None:
    """Create `outbox` and `inbox` from a service's first alembic migration (`upgrade()`)."""
    op.create_table(OUTBOX_TABLE, *_outbox_columns())
    for name, columns in _OUTBOX_INDEXES:
        op.create_index(name, OUTBOX_TABLE, list(columns), postgresql_where=_PENDING)
    op.create_table(INBOX_TABLE, *_inbox_columns())


def drop_outbox_tables(op: Any) -> None:
    """The `downgrade()` counterpart of `create_outbox_tables`."""
    op.drop_table(INBOX_TABLE)
    for name, _ in _OUTBOX_INDEXES:
        op.drop_index(name, table_name=OUTBOX_TABLE)
    op.drop_table(OUTBOX_TABLE)


# Schema-less twins for our own statements: the session's search_path picks the service schema.
_dml_metadata = MetaData()
outbox_table, inbox_table = outbox_tables(_dml_metadata)


# --- writing events ----------------------------------------------------------------------------

# One round trip per event (or per batch of events): the NOTIFY rides on the INSERT. NOTIFY is
# delivered at commit and dropped on rollback; repeats within one transaction fold into one.
_INSERT_EVENTS = text(
    """
    WITH added AS (
      INSERT INTO outbox (event_id, topic, key, event_type, payload, headers)
      SELECT e, t, k, y, p::jsonb, h::jsonb FROM unnest(
        CAST(:event_ids AS uuid[]), CAST(:topics AS text[]), CAST(:keys AS text[]),
        CAST(:event_types AS text[]), CAST(:payloads AS text[]), CAST(:headers AS text[])
      ) WITH ORDINALITY AS rows (e, t, k, y, p, h, n)
      ORDER BY n
      RETURNING 1
    )
    SELECT pg_notify('paygate_outbox_' || current_schema(), '') FROM (SELECT 1) AS once
    WHERE EXISTS (SELECT 1 FROM added)
    """
)


def channel_for_schema(schema: str) -> str:
    """The NOTIFY channel of a schema's outbox (`paygate_outbox_<schema>`)."""
    return f"{CHANNEL_PREFIX}{schema}"


@dataclass(frozen=True)
class OutgoingEvent:
    """One event for `add_events`: the envelope, its topic and its Kafka key (default: aggregate)."""

    envelope: EventEnvelope
    topic: str
    key: str | None = None


# For a statement that writes its own row and its event together (one round trip): a CTE
# `INSERT INTO outbox ... SELECT <OUTBOX_VALUES> FROM <the row's CTE>` with `outbox_params()`;
# select `OUTBOX_NOTIFY` in the outer query so the relay is woken at commit.
OUTBOX_COLUMNS = "event_id, topic, key, event_type, payload, headers"
OUTBOX_VALUES = (
    "CAST(:ob_event_id AS uuid), CAST(:ob_topic AS text), CAST(:ob_key AS text), "
    "CAST(:ob_event_type AS text), CAST(:ob_payload AS jsonb), CAST(:ob_headers AS jsonb)"
)
OUTBOX_NOTIFY = "pg_notify('paygate_outbox_' || current_schema(), '')"


def outbox_params(event: OutgoingEvent) -> dict[str, Any]:
    """The bound values of `OUTBOX_VALUES` for one event."""
    envelope = event.envelope
    return {
        "ob_event_id": envelope.event_id,
        "ob_topic": event.topic,
        "ob_key": event.key if event.key is not None else envelope.aggregate_id,
        "ob_event_type": envelope.event_type,
        "ob_payload": envelope.model_dump_json(),
        "ob_headers": orjson.dumps(envelope_headers(envelope)).decode(),
    }


async def add_event(
    session: AsyncSession | AsyncConnection,
    envelope: EventEnvelope,
    *,
    topic: str,
    key: str | None = None,
) -> None:
    """Write an event in the caller's transaction; the relay is woken when that commits.

    Nothing is published if the transaction rolls back. `key` defaults to the aggregate id.
    """
    await add_events(session, [OutgoingEvent(envelope, topic, key)])


async def add_events(
    session: AsyncSession | AsyncConnection, events: Sequence[OutgoingEvent]
) -> None:
    """Write several events in the caller's transaction with one statement (a consumed batch)."""
    if not events:
        return
    await session.execute(
        _INSERT_EVENTS,
        {
            "event_ids": [e.envelope.event_id for e in events],
            "topics": [e.topic for e in events],
            "keys": [e.key if e.key is not None else e.envelope.aggregate_id for e in events],
            "event_types": [e.envelope.event_type for e in events],
            # pydantic-core writes the JSON: no dict round trip through the json module.
            "payloads": [e.envelope.model_dump_json() for e in events],
            "headers": [orjson.dumps(envelope_headers(e.envelope)).decode() for e in events],
        },
    )


# --- the relay ---------------------------------------------------------------------------------

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


@dataclass(frozen=True)
class RetentionPolicy:
    """How long processed rows are kept.

    Inbox rows are the consumers' memory of what they applied: keep them longer than the
    broker keeps messages (Kafka's default is 7 days), or a very late redelivery would be
    applied twice. Published outbox rows are only kept for inspection.
    """

    outbox_published_days: float = 3.0
    inbox_days: float = 14.0
    interval_seconds: float = 600.0
    batch_size: int = 5000


async def purge_processed(engine: AsyncEngine, policy: RetentionPolicy) -> tuple[int, int]:
    """Delete published outbox rows and inbox rows past retention, in bounded batches."""
    removed = [0, 0]
    statements = (
        (
            0,
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE state = 'published' "
            "AND published_at < now() - make_interval(secs => :age) LIMIT :n)",
            policy.outbox_published_days,
        ),
        (
            1,
            "DELETE FROM inbox WHERE (consumer, event_id) IN (SELECT consumer, event_id FROM inbox "
            "WHERE processed_at < now() - make_interval(secs => :age) LIMIT :n)",
            policy.inbox_days,
        ),
    )
    for slot, sql, days in statements:
        while True:
            async with engine.begin() as conn:
                result = await conn.execute(
                    text(sql), {"age": days * 86400, "n": policy.batch_size}
                )
            removed[slot] += result.rowcount or 0
            if (result.rowcount or 0) < policy.batch_size:
                break
    if any(removed):
        log.info("purged %d published outbox rows and %d inbox rows", *removed)
    return removed[0], removed[1]


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
