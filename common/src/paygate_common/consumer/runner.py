"""The consumer runner: one transaction per consumed batch, inbox dedupe, retries, deferrals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from paygate_common.consumer.dead_letters import HEADER_REPLAY_FOR, publish_dead_letter
from paygate_common.consumer.dead_letters import describe as _describe
from paygate_common.consumer.handlers import BatchHandler, Handler, TransientError, single_event
from paygate_common.consumer.inbox import claim_batch, claim_event, mark_dead_lettered
from paygate_common.events.envelope import EventEnvelope
from paygate_common.kafka import create_consumer, headers_dict, start_with_retry
from paygate_common.logging import request_id_var
from paygate_common.metrics import EVENTS_CONSUMED
from paygate_common.settings import ServiceSettings

log = logging.getLogger("paygate.consumer")


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    RETRIED = "retried"
    DEAD_LETTERED = "dead_lettered"


class _StopRequested(Exception):
    """The runner is stopping in the middle of a batch: roll it back, commit nothing."""


class _DeferPartition(Exception):
    def __init__(self, error: TransientError) -> None:
        super().__init__(str(error))
        self.error = error


class ConsumerRunner:
    """Consumes `topics` in group `consumer_name` and applies each event exactly once.

    Per batch (`getmany`), first the fast path: one database transaction, ONE inbox insert for
    every event of the batch (`unnest`; what conflicts was seen before and is skipped), the
    batch handler called once with the new envelopes, one commit; then the Kafka offsets. If
    anything in it raises, the transaction is rolled back and the batch is applied again event
    by event: one SAVEPOINT per event with its inbox row `(consumer_name, event_id)`, a handler
    that raises retried in-process (`max_attempts` in all, exponential backoff), then sent to
    `dlq_topic` and marked dead-lettered in the inbox; `TransientError` pauses the partition at
    that event and retries it with capped backoff, forever. Either way the DB commits first,
    then the offsets, so a crash in between re-reads events that the inbox then skips.

    Give `handler` (one event) or `batch_handler` (a batch; it then also serves the
    event-by-event path with batches of one); `per_event(handler)` is the adapter between them.
    """

    def __init__(
        self,
        *,
        settings: ServiceSettings,
        consumer_name: str,
        topics: Sequence[str],
        handler: Handler | None = None,
        sessionmaker: async_sessionmaker[AsyncSession],
        producer: AIOKafkaProducer,
        dlq_topic: str,
        max_attempts: int = 5,
        backoff_base: float = 0.2,
        backoff_max: float = 5.0,
        batch_size: int = 200,
        batch_timeout_ms: int = 50,
        transient_backoff_max: float | None = None,
        start_attempts: int = 30,
        start_delay: float = 1.0,
        consumer_options: dict[str, Any] | None = None,
        batch_handler: BatchHandler | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if handler is None and batch_handler is None:
            raise ValueError("a consumer needs a handler or a batch_handler")
        self.settings = settings
        self.consumer_name = consumer_name
        self.topics = list(topics)
        self.batch_handler: BatchHandler | None = batch_handler
        self.handler: Handler = handler or single_event(batch_handler)  # type: ignore[arg-type]
        # A failed fast-path run counts as the first attempt of the event that raised in it.
        self._attempts_used: dict[uuid.UUID, int] = {}
        self._transient: dict[uuid.UUID, TransientError] = {}
        self.sessionmaker = sessionmaker
        self.producer = producer
        self.dlq_topic = dlq_topic
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.batch_size = batch_size
        self.batch_timeout_ms = batch_timeout_ms
        self.transient_backoff_max = transient_backoff_max or backoff_max
        self.start_attempts = start_attempts
        self.start_delay = start_delay
        self.consumer_options = dict(consumer_options or {})
        self.service = settings.service_name
        self.consumer: AIOKafkaConsumer | None = None
        self._stopping = asyncio.Event()
        self._batch_lock = asyncio.Lock()
        # Partitions paused by a TransientError: when to resume, and how many times in a row.
        self._paused_until: dict[TopicPartition, float] = {}
        self._transient_streak: dict[TopicPartition, int] = {}
        self.started = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until `stop()`. Safe to call again after it returned or raised."""
        self._paused_until.clear()
        self._transient_streak.clear()
        # The group is the consumer name unless overridden (tests re-read with a fresh group).
        options = dict(self.consumer_options)
        group_id = options.pop("group_id", self.consumer_name)
        consumer = create_consumer(
            self.settings, group_id, self.topics, listener=_Listener(self), **options
        )
        self.consumer = consumer
        try:
            await start_with_retry(consumer, self.start_attempts, self.start_delay)
            self.started.set()
            failures = 0
            while not self._stopping.is_set():
                self._resume_due_partitions()
                try:
                    batch = await consumer.getmany(
                        timeout_ms=self.batch_timeout_ms, max_records=self.batch_size
                    )
                    if batch:
                        await self._consume(batch)
                    failures = 0
                except _StopRequested:
                    break
                except Exception:
                    # Database or broker trouble: the batch was rolled back and rewound.
                    failures += 1
                    log.exception("%s: batch failed; retrying", self.consumer_name)
                    await self._sleep(min(self.backoff_max, self.backoff_base * 2**failures))
        finally:
            self.started.clear()
            self.consumer = None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(consumer.stop(), 10)

    async def stop(self) -> None:
        self._stopping.set()

    # -- one batch ---------------------------------------------------------------------------

    async def _consume(self, batch: dict[TopicPartition, list[ConsumerRecord[Any, Any]]]) -> None:
        consumer = self.consumer
        assert consumer is not None
        async with self._batch_lock:
            # A rebalance between getmany and here took partitions away: leave them to the owner.
            assigned = consumer.assignment()
            batch = {tp: records for tp, records in batch.items() if tp in assigned and records}
            if not batch:
                return
            try:
                offsets = await self._apply(batch)
            except BaseException:
                self._rewind(batch)
                raise
            if offsets:
                await self._commit(offsets)

    async def _apply(
        self, batch: dict[TopicPartition, list[ConsumerRecord[Any, Any]]]
    ) -> dict[TopicPartition, int]:
        """Apply the batch in one transaction; returns the offsets to commit after it."""
        offsets = await self._apply_batch(batch)
        if offsets is None:
            offsets = await self._apply_each(batch)
        return offsets

    async def _apply_batch(
        self, batch: dict[TopicPartition, list[ConsumerRecord[Any, Any]]]
    ) -> dict[TopicPartition, int] | None:
        """The fast path; None when the batch must go event by event (see the class doc)."""
        envelopes: list[tuple[str, EventEnvelope]] = []
        for records in batch.values():
            for record in records:
                if headers_dict(record.headers).get(HEADER_REPLAY_FOR) == self.consumer_name:
                    return None  # an operator's replay: its inbox row needs the upsert
                try:
                    envelopes.append((record.topic, EventEnvelope.from_bytes(record.value or b"")))
                except Exception:
                    return None  # the event-by-event path dead-letters it
        failing: uuid.UUID | None = None
        try:
            async with self.sessionmaker() as session, session.begin():
                ids = list(dict.fromkeys(envelope.event_id for _, envelope in envelopes))
                new = await claim_batch(session, self.consumer_name, ids)
                fresh: list[EventEnvelope] = []
                outcomes: list[tuple[str, Outcome]] = []
                for topic, envelope in envelopes:
                    if envelope.event_id in new:
                        new.discard(envelope.event_id)  # the same event twice in one batch
                        fresh.append(envelope)
                        outcomes.append((topic, Outcome.APPLIED))
                    else:
                        outcomes.append((topic, Outcome.DUPLICATE))
                if fresh and self.batch_handler is not None:
                    await self.batch_handler(session, fresh)
                else:
                    for envelope in fresh:
                        failing = envelope.event_id
                        token = request_id_var.set(
                            envelope.correlation_id or str(envelope.event_id)
                        )
                        try:
                            await self.handler(session, envelope)
                        finally:
                            request_id_var.reset(token)
                    failing = None
        except Exception as exc:
            if failing is not None and isinstance(exc, TransientError):
                self._transient[failing] = exc  # deferred without being called again
            elif failing is not None:
                self._attempts_used[failing] = self._attempts_used.get(failing, 0) + 1
            log.info(
                "%s: batch of %d rolled back (%s); applying it event by event",
                self.consumer_name,
                len(envelopes),
                _describe(exc),
            )
            return None
        for topic, outcome in outcomes:
            EVENTS_CONSUMED.labels(self.service, topic, outcome.value).inc()
        for tp in batch:
            self._transient_streak.pop(tp, None)
        return {tp: records[-1].offset + 1 for tp, records in batch.items()}

    async def _apply_each(
        self, batch: dict[TopicPartition, list[ConsumerRecord[Any, Any]]]
    ) -> dict[TopicPartition, int]:
        """Event by event, one SAVEPOINT each: retries, deferrals and dead letters."""
        offsets: dict[TopicPartition, int] = {}
        outcomes: list[tuple[str, Outcome]] = []
        async with self.sessionmaker() as session, session.begin():
            for tp, records in batch.items():
                for record in records:
                    try:
                        outcome = await self._apply_record(session, record)
                    except _DeferPartition as deferred:
                        self._defer(tp, record.offset, deferred.error)
                        outcomes.append((record.topic, Outcome.RETRIED))
                        break
                    outcomes.append((record.topic, outcome))
                    offsets[tp] = record.offset + 1
                    self._transient_streak.pop(tp, None)
        for topic, outcome in outcomes:
            EVENTS_CONSUMED.labels(self.service, topic, outcome.value).inc()
        return offsets

    async def _apply_record(
        self, session: AsyncSession, record: ConsumerRecord[Any, Any]
    ) -> Outcome:
        try:
            envelope = EventEnvelope.from_bytes(record.value or b"")
        except Exception as exc:  # not an envelope: retrying cannot help
            log.error(
                "%s: undecodable message at %s[%d]@%d goes to %s",
                self.consumer_name,
                record.topic,
                record.partition,
                record.offset,
                self.dlq_topic,
            )
            await self._dead_letter(record, None, exc, attempts=1)
            return Outcome.DEAD_LETTERED

        replay = headers_dict(record.headers).get(HEADER_REPLAY_FOR) == self.consumer_name
        if (transient := self._transient.pop(envelope.event_id, None)) is not None:
            raise _DeferPartition(transient)
        attempt = self._attempts_used.pop(envelope.event_id, 0)
        while True:
            attempt += 1
            try:
                # The handler's logs, HTTP calls and events carry the event's correlation id.
                token = request_id_var.set(envelope.correlation_id or str(envelope.event_id))
                try:
                    async with session.begin_nested():
                        if not await claim_event(
                            session, self.consumer_name, envelope.event_id, replay=replay
                        ):
                            return Outcome.DUPLICATE
                        await self.handler(session, envelope)
                finally:
                    request_id_var.reset(token)
                return Outcome.APPLIED
            except TransientError as exc:
                await self._check_transaction(session)
                raise _DeferPartition(exc) from exc
            except Exception as exc:
                await self._check_transaction(session)
                if attempt >= self.max_attempts:
                    log.error(
                        "%s: event %s (%s) failed %d times, dead-lettered to %s: %s",
                        self.consumer_name,
                        envelope.event_id,
                        envelope.event_type,
                        attempt,
                        self.dlq_topic,
                        _describe(exc),
                    )
                    await self._dead_letter(record, envelope, exc, attempts=attempt)
                    async with session.begin_nested():
                        await mark_dead_lettered(session, self.consumer_name, envelope.event_id)
                    return Outcome.DEAD_LETTERED
                EVENTS_CONSUMED.labels(self.service, record.topic, Outcome.RETRIED.value).inc()
                log.warning(
                    "%s: event %s (%s) failed (attempt %d/%d), retrying: %s",
                    self.consumer_name,
                    envelope.event_id,
                    envelope.event_type,
                    attempt,
                    self.max_attempts,
                    _describe(exc),
                )
                await self._sleep(self._backoff(attempt), interrupt=True)

    async def _check_transaction(self, session: AsyncSession) -> None:
        """A handler error that also broke the connection must fail the batch, not the event."""
        await session.execute(text("SELECT 1"))

    async def _dead_letter(
        self,
        record: ConsumerRecord[Any, Any],
        envelope: EventEnvelope | None,
        exc: BaseException,
        *,
        attempts: int,
    ) -> None:
        await publish_dead_letter(
            self.producer,
            self.dlq_topic,
            consumer=self.consumer_name,
            record=record,
            envelope=envelope,
            exc=exc,
            attempts=attempts,
        )

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        consumer = self.consumer
        assert consumer is not None
        assigned = consumer.assignment()
        owned = {tp: offset for tp, offset in offsets.items() if tp in assigned}
        if not owned:
            return
        try:
            await consumer.commit(owned)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced: the new owner re-reads these events and its inbox skips them.
            log.warning("%s: offset commit lost to a rebalance: %s", self.consumer_name, exc)

    def _rewind(self, batch: dict[TopicPartition, list[ConsumerRecord[Any, Any]]]) -> None:
        """Nothing of the batch was committed: read it again from its first record."""
        consumer = self.consumer
        if consumer is None:
            return
        for tp, records in batch.items():
            with contextlib.suppress(IllegalStateError, KafkaError, AssertionError):
                consumer.seek(tp, records[0].offset)

    # -- transient failures ------------------------------------------------------------------

    def _defer(self, tp: TopicPartition, offset: int, error: TransientError) -> None:
        consumer = self.consumer
        assert consumer is not None
        streak = self._transient_streak.get(tp, 0) + 1
        self._transient_streak[tp] = streak
        delay = min(self.transient_backoff_max, self.backoff_base * 2 ** (streak - 1))
        log.warning(
            "%s: dependency unavailable at %s[%d]@%d (%s); retry #%d in %.2fs",
            self.consumer_name,
            tp.topic,
            tp.partition,
            offset,
            _describe(error),
            streak,
            delay,
        )
        consumer.seek(tp, offset)
        consumer.pause(tp)
        self._paused_until[tp] = time.monotonic() + delay

    def _resume_due_partitions(self) -> None:
        consumer = self.consumer
        if consumer is None or not self._paused_until:
            return
        now = time.monotonic()
        due = [tp for tp, when in self._paused_until.items() if when <= now]
        for tp in due:
            del self._paused_until[tp]
        assigned = consumer.assignment()
        resumable = [tp for tp in due if tp in assigned]
        if resumable:
            consumer.resume(*resumable)

    def _forget(self, partitions: set[TopicPartition]) -> None:
        for tp in partitions:
            self._paused_until.pop(tp, None)
            self._transient_streak.pop(tp, None)

    # -- helpers -----------------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        return float(min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1)))

    async def _sleep(self, seconds: float, *, interrupt: bool = False) -> None:
        """Sleep, waking early on `stop()`; with `interrupt` a stop aborts the current batch."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        if interrupt and self._stopping.is_set():
            raise _StopRequested


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Revocation waits for the batch in flight, so its offsets are committed by their owner."""

    def __init__(self, runner: ConsumerRunner) -> None:
        self.runner = runner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self.runner._batch_lock:
            self.runner._forget(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        return None
