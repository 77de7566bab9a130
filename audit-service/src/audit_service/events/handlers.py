"""Every event topic becomes audit records: one per event id, masked, linked into the chain."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from audit_service.domain.records import draft_record
from audit_service.store.records import append_records
from paygate_common.eventing import ConsumerSpec
from paygate_common.events import EventEnvelope
from paygate_common.events.topics import AUDIT_DLQ, EVENT_TOPICS

CONSUMER_NAME = "audit-service"


async def record_event(session: AsyncSession, envelope: EventEnvelope) -> None:
    """Append the envelope's record; the runner's inbox (and the event_id key) make it once.

    The chain lock taken here is held by the batch's transaction until it commits, so the
    batch appends as one run even with several audit-service replicas.
    """
    await append_records(session, [draft_record(envelope)])


def audit_consumer(
    *, max_attempts: int, batch_size: int, consumer_options: dict[str, Any] | None = None
) -> ConsumerSpec:
    return ConsumerSpec(
        name=CONSUMER_NAME,
        topics=list(EVENT_TOPICS),
        handler=record_event,
        dlq_topic=AUDIT_DLQ,
        max_attempts=max_attempts,
        options={"batch_size": batch_size, "consumer_options": consumer_options or {}},
    )


__all__ = ["CONSUMER_NAME", "audit_consumer", "record_event"]
