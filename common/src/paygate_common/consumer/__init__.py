"""Idempotent Kafka consumer: one transaction per batch, inbox dedupe, retries, dead letters."""

from paygate_common.consumer.dead_letters import (
    HEADER_REPLAY_FOR,
    MAX_ERROR_CHARS,
    DeadLetter,
    parse_dead_letter,
    publish_dead_letter,
    replay_dead_letter,
)
from paygate_common.consumer.handlers import (
    BatchHandler,
    Handler,
    TransientError,
    per_event,
    single_event,
)
from paygate_common.consumer.inbox import claim_batch, claim_event, mark_dead_lettered
from paygate_common.consumer.runner import ConsumerRunner, Outcome

__all__ = [
    "HEADER_REPLAY_FOR",
    "MAX_ERROR_CHARS",
    "BatchHandler",
    "ConsumerRunner",
    "DeadLetter",
    "Handler",
    "Outcome",
    "TransientError",
    "claim_batch",
    "claim_event",
    "mark_dead_lettered",
    "parse_dead_letter",
    "per_event",
    "publish_dead_letter",
    "replay_dead_letter",
    "single_event",
]
