"""Dead letters: the DLQ message a consumer publishes when it gives up; the operator's replay."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer, ConsumerRecord
from pydantic import BaseModel, ConfigDict

from paygate_common.events.envelope import EventEnvelope
from paygate_common.kafka import kafka_headers, to_kafka_headers
from paygate_common.logging import mask

# A replayed dead letter carries the consumer that gave up on it: only that consumer re-applies
# it; consumers that applied it the first time still see a duplicate.
HEADER_REPLAY_FOR = "paygate-replay-for"
MAX_ERROR_CHARS = 2000


class DeadLetter(BaseModel):
    """The value of a dead-letter message: the original envelope plus why and where it failed."""

    model_config = ConfigDict(extra="allow")

    envelope: EventEnvelope | None = None
    raw: str | None = None  # the undecodable value (masked) when it was not an envelope
    key: str | None = None
    error: str
    attempts: int
    original_topic: str
    partition: int
    offset: int
    consumer: str
    dead_lettered_at: datetime


async def publish_dead_letter(
    producer: AIOKafkaProducer,
    dlq_topic: str,
    *,
    consumer: str,
    record: ConsumerRecord[Any, Any],
    envelope: EventEnvelope | None,
    exc: BaseException,
    attempts: int,
) -> None:
    """Publish to the DLQ and wait for the ack: the consumer's batch commits only after that."""
    error = describe(exc)
    key = record.key.decode("utf-8", "replace") if record.key else None
    letter = DeadLetter(
        envelope=envelope,
        raw=None
        if envelope
        else mask((record.value or b"").decode("utf-8", "replace"))[:MAX_ERROR_CHARS],
        key=key,
        error=error,
        attempts=attempts,
        original_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        consumer=consumer,
        dead_lettered_at=datetime.now(UTC),
    )
    headers = kafka_headers(envelope) if envelope else []
    headers += to_kafka_headers(
        {
            "error": error[:500],
            "attempts": str(attempts),
            "original_topic": record.topic,
            "partition": str(record.partition),
            "offset": str(record.offset),
            "consumer": consumer,
        }
    )
    await producer.send_and_wait(
        dlq_topic,
        value=letter.model_dump_json().encode(),
        key=record.key,
        headers=headers,
    )


def parse_dead_letter(value: bytes | str | dict[str, Any] | DeadLetter) -> DeadLetter:
    if isinstance(value, DeadLetter):
        return value
    if isinstance(value, dict):
        return DeadLetter.model_validate(value)
    return DeadLetter.model_validate_json(value)


async def replay_dead_letter(
    producer: AIOKafkaProducer, dlq_message_value: bytes | str | dict[str, Any] | DeadLetter
) -> EventEnvelope:
    """Republish a dead-lettered envelope to its original topic (an operator's replay).

    The event keeps its id: consumers that applied it skip it; the consumer that gave up on it
    applies it (the `paygate-replay-for` header lets it past its dead-lettered inbox row).
    Raises ValueError for a dead letter that holds no envelope (an undecodable message).
    """
    letter = parse_dead_letter(dlq_message_value)
    if letter.envelope is None:
        raise ValueError("this dead letter is not an event envelope and cannot be replayed")
    envelope = letter.envelope
    key = letter.key if letter.key is not None else envelope.aggregate_id
    headers = [*kafka_headers(envelope), (HEADER_REPLAY_FOR, letter.consumer.encode())]
    await producer.send_and_wait(
        letter.original_topic,
        value=envelope.to_bytes(),
        key=key.encode(),
        headers=headers,
    )
    return envelope


def describe(exc: BaseException) -> str:
    """`Type: message`, masked and cut: what a log line or a dead letter says about an error."""
    return mask(f"{type(exc).__name__}: {exc}")[:MAX_ERROR_CHARS]
