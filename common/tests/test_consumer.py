"""The idempotent consumer against real PostgreSQL and Tansu: inbox, retries, DLQ, transient errors."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from paygate_common.consumer import (
    DeadLetter,
    TransientError,
    replay_dead_letter,
)
from paygate_common.db import after_commit
from paygate_common.events.envelope import EventEnvelope
from paygate_common.kafka import headers_dict
from paygate_devstack.events_testing import (
    consumed,
    eventually,
    read_topic,
)

if TYPE_CHECKING:
    from conftest import Spine

SERVICE = "consumer-test"


@pytest.fixture
def service_name() -> str:
    return SERVICE


@pytest.fixture
async def topics(kafka_broker: Any) -> tuple[str, str]:
    """(topic, its dead-letter topic); one partition so the order of events is the test's."""
    name = f"test.consumer.{secrets.token_hex(4)}"
    await kafka_broker.acreate_topics([name, f"{name}.dlq"], partitions=1)
    return name, f"{name}.dlq"


async def outcome_count(topic: str, outcome: str, expected: float) -> bool:
    return consumed(SERVICE, topic, outcome) >= expected


# --- exactly-once application ------------------------------------------------------------------


async def test_the_same_envelope_produced_twice_is_applied_once(
    spine: Spine, topics: tuple[str, str]
) -> None:
    topic, _ = topics
    event, other = spine.envelope(), spine.envelope()
    await spine.produce(topic, event, event, other)

    async with spine.running(spine.runner(topic)):
        await eventually(lambda: outcome_count(topic, "applied", 2), within=20)
        await eventually(lambda: outcome_count(topic, "duplicate", 1))

    assert await spine.effects() == {event.event_id: 1, other.event_id: 1}


async def test_events_reread_after_uncommitted_offsets_are_not_applied_again(
    spine: Spine, topics: tuple[str, str]
) -> None:
    topic, _ = topics
    events = [spine.envelope() for _ in range(5)]
    await spine.produce(topic, *events)
    async with spine.running(spine.runner(topic)):
        await eventually(lambda: outcome_count(topic, "applied", 5), within=20)

    # a restarted consumer whose offsets never reached Kafka reads everything again
    fresh_group = {"group_id": f"restarted-{secrets.token_hex(4)}"}
    async with spine.running(spine.runner(topic, consumer_options=fresh_group)):
        await eventually(lambda: outcome_count(topic, "duplicate", 5), within=20)

    assert await spine.effects() == {e.event_id: 1 for e in events}


# --- batches -----------------------------------------------------------------------------------


async def test_a_batch_handler_gets_whole_batches_without_duplicates_and_commits_once(
    spine: Spine, topics: tuple[str, str]
) -> None:
    topic, _ = topics
    events = [spine.envelope() for _ in range(6)]
    await spine.produce(topic, *events, events[2], events[4])  # two redeliveries
    batches: list[list[uuid.UUID]] = []
    woken: list[int] = []

    async def batch_handler(session: AsyncSession, envelopes: Sequence[EventEnvelope]) -> None:
        batches.append([e.event_id for e in envelopes])
        for event in envelopes:
            await spine.record_effect(session, event)
        # Called once the batch's transaction committed: its rows are visible by then.
        after_commit(session, lambda: woken.append(len(envelopes)))

    runner = spine.runner(topic, handler=None, batch_handler=batch_handler)
    async with spine.running(runner):
        await eventually(lambda: outcome_count(topic, "applied", 6), within=20)
        await eventually(lambda: outcome_count(topic, "duplicate", 2), within=20)

    assert await spine.effects() == {e.event_id: 1 for e in events}
    assert [i for batch in batches for i in batch] == [e.event_id for e in events]
    assert sum(woken) == 6 and len(woken) == len(batches)
    # Fewer batches than events: the whole getmany went to the handler at once.
    assert len(batches) < len(events)


async def test_after_commit_runs_on_commit_only(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    calls: list[str] = []
    async with sessionmaker() as session, session.begin():
        after_commit(session, lambda: calls.append("committed"))
        assert calls == []
    assert calls == ["committed"]
    with pytest.raises(RuntimeError):
        async with sessionmaker() as session, session.begin():
            after_commit(session, lambda: calls.append("rolled back"))
            raise RuntimeError("the unit of work fails")
    assert calls == ["committed"]


# --- dead letters ------------------------------------------------------------------------------


async def test_a_poison_event_is_dead_lettered_after_max_attempts_and_later_events_still_apply(
    spine: Spine, topics: tuple[str, str]
) -> None:
    topic, dlq = topics
    before, poison, after = (
        spine.envelope(),
        spine.envelope(card="4242 4242 4242 4242"),
        spine.envelope(),
    )
    attempts: Counter[uuid.UUID] = Counter()

    async def handler(session: AsyncSession, event: EventEnvelope) -> None:
        attempts[event.event_id] += 1
        await spine.record_effect(session, event)  # rolled back with its savepoint
        if event.event_id == poison.event_id:
            raise ValueError("cannot settle 4242 4242 4242 4242")

    await spine.produce(topic, before, poison, after)
    runner = spine.runner(topic, handler, max_attempts=3)
    async with spine.running(runner):
        await eventually(lambda: outcome_count(topic, "applied", 2), within=20)

    # The batch's first, all-in-one run rolled back at the poison event (its attempt 1), so the
    # events around it may have been run once more; their effects are there exactly once.
    assert attempts[poison.event_id] == 3
    assert attempts[before.event_id] in (1, 2) and attempts[after.event_id] in (1, 2)
    assert await spine.effects() == {before.event_id: 1, after.event_id: 1}
    [message] = await read_topic(spine.bootstrap, dlq, expect=1)
    letter = DeadLetter.model_validate_json(message.value)
    assert letter.envelope == poison
    assert letter.attempts == 3
    assert letter.error.startswith("ValueError: cannot settle")
    assert "4242 4242 4242 4242" not in letter.error  # masked
    assert (letter.original_topic, letter.partition, letter.offset) == (topic, 0, 1)
    assert letter.consumer == runner.consumer_name
    headers = headers_dict(message.headers)
    assert headers["attempts"] == "3"
    assert headers["event_id"] == str(poison.event_id)
    assert headers["original_topic"] == topic
    async with spine.engine.connect() as conn:
        outcome = (
            await conn.execute(
                text("SELECT outcome FROM inbox WHERE event_id = :e"), {"e": poison.event_id}
            )
        ).scalar_one()
    assert outcome == "dead_lettered"


async def test_an_undecodable_message_goes_straight_to_the_dead_letter_topic(
    spine: Spine, topics: tuple[str, str]
) -> None:
    topic, dlq = topics
    good = spine.envelope()
    await spine.producer.send_and_wait(topic, b"{not an envelope", key=b"k")
    await spine.produce(topic, good)

    async with spine.running(spine.runner(topic)):
        await eventually(lambda: outcome_count(topic, "applied", 1), within=20)

    assert await spine.effects() == {good.event_id: 1}
    [message] = await read_topic(spine.bootstrap, dlq, expect=1)
    letter = DeadLetter.model_validate_json(message.value)
    assert letter.envelope is None
    assert letter.raw == "{not an envelope"
    assert letter.error.startswith("ValidationError")
    assert (letter.original_topic, letter.offset, letter.key) == (topic, 0, "k")


async def test_a_replayed_dead_letter_is_applied_by_the_consumer_that_gave_up_on_it(
    spine: Spine, topics: tuple[str, str]
) -> None:
    topic, dlq = topics
    event = spine.envelope()
    broken = True

    async def handler(session: AsyncSession, env: EventEnvelope) -> None:
        if broken:
            raise RuntimeError("template missing")
        await spine.record_effect(session, env)

    await spine.produce(topic, event)
    runner = spine.runner(topic, handler, max_attempts=2)
    async with spine.running(runner):
        await eventually(lambda: outcome_count(topic, "dead_lettered", 1), within=20)
        [message] = await read_topic(spine.bootstrap, dlq, expect=1)

        # a plain redelivery of the same event stays dead-lettered: it is not re-applied
        await spine.produce(topic, event)
        await eventually(lambda: outcome_count(topic, "duplicate", 1))

        broken = False  # the operator fixed the cause, then replays
        replayed = await replay_dead_letter(spine.producer, message.value)
        assert replayed == event
        await eventually(lambda: outcome_count(topic, "applied", 1))

    assert await spine.effects() == {event.event_id: 1}


# --- transient failures ------------------------------------------------------------------------


async def test_a_transient_error_is_retried_until_the_dependency_is_back_and_never_dead_lettered(
    spine: Spine, topics: tuple[str, str]
) -> None:
    topic, dlq = topics
    waiting, later = spine.envelope(), spine.envelope()
    calls: Counter[uuid.UUID] = Counter()

    async def handler(session: AsyncSession, event: EventEnvelope) -> None:
        calls[event.event_id] += 1
        # user-service is down for the first 7 calls: more than max_attempts
        if event.event_id == waiting.event_id and calls[event.event_id] <= 7:
            raise TransientError("user-service unreachable")
        await spine.record_effect(session, event)

    await spine.produce(topic, waiting, later)
    runner = spine.runner(topic, handler, max_attempts=2, backoff_max=0.05)
    async with spine.running(runner):
        await eventually(lambda: outcome_count(topic, "applied", 2), within=20)

    assert calls == {waiting.event_id: 8, later.event_id: 1}
    assert await spine.effects() == {waiting.event_id: 1, later.event_id: 1}
    assert consumed(SERVICE, topic, "retried") == 7
    assert consumed(SERVICE, topic, "dead_lettered") == 0
    assert await read_topic(spine.bootstrap, dlq, expect=0, settle=0.3) == []


async def test_stop_is_honoured_while_a_dependency_stays_down(
    spine: Spine, topics: tuple[str, str]
) -> None:
    topic, _ = topics

    async def handler(session: AsyncSession, event: EventEnvelope) -> None:
        raise TransientError("payment provider down")

    await spine.produce(topic, spine.envelope())
    runner = spine.runner(topic, handler, backoff_max=0.05)
    task = asyncio.create_task(runner.run())
    await eventually(lambda: outcome_count(topic, "retried", 3), within=20)
    await runner.stop()
    await asyncio.wait_for(task, 5)
