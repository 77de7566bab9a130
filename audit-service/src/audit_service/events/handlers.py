"""Every event topic becomes audit records: one per event id, masked, linked into the chain."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from audit_service.domain.chain import canonical_json
from audit_service.domain.records import draft_record
from audit_service.store.records import append_records, append_records_sync
from paygate_common.eventing import ConsumerSpec
from paygate_common.events import EventEnvelope
from paygate_common.events.topics import AUDIT_DLQ, EVENT_TOPICS

CONSUMER_NAME = "audit-service"


_PENDING = "audit_service.pending_drafts"
_LISTENING = "audit_service.appends_at_commit"


async def record_event(session: AsyncSession, envelope: EventEnvelope) -> None:
    """Draft the envelope's record; the whole batch is linked and inserted at commit.

    The runner applies a batch in one transaction (one savepoint and inbox row per event).
    Appending at commit takes the chain lock once per batch, for the end of the transaction
    only, writes the batch in one multi-row insert, and links the batch's events in the order
    they happened (`occurred_at`), whichever topic partition was fetched first. A draft is
    added only after it was built, so an event whose handling failed leaves none behind.
    """
    if not session.info.get(_LISTENING):
        event.listen(session.sync_session, "before_commit", _append_pending)
        session.info[_LISTENING] = True
    draft = draft_record(envelope)
    # What cannot be hashed (a NaN) must fail here, in this event's savepoint, and be
    # dead-lettered, not at commit where it would fail the whole batch again and again.
    canonical_json(draft)
    session.info.setdefault(_PENDING, []).append(draft)


def chain_order(drafts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The order a batch is linked in: when it happened; ties keep their consumed order."""
    return sorted(drafts, key=lambda d: d["occurred_at"])  # sorted() is stable


def _append_pending(sync_session: Session) -> None:
    # `before_commit` also fires when each event's savepoint is released: wait for the batch.
    if sync_session.in_nested_transaction():
        return
    drafts: list[dict[str, Any]] = sync_session.info.pop(_PENDING, [])
    append_records_sync(sync_session, chain_order(drafts))


async def record_batch(session: AsyncSession, envelopes: Sequence[EventEnvelope]) -> None:
    """A consumed batch's records, linked in `chain_order` and inserted now, in one go.

    The same drafts and order as `record_event` one by one. An event that cannot be drafted
    or hashed fails the batch here; the runner then applies it event by event, where that one
    event is dead-lettered and the rest recorded.
    """
    await append_records(session, chain_order([draft_record(e) for e in envelopes]))


def audit_consumer(
    *, max_attempts: int, batch_size: int, consumer_options: dict[str, Any] | None = None
) -> ConsumerSpec:
    return ConsumerSpec(
        name=CONSUMER_NAME,
        topics=list(EVENT_TOPICS),
        handler=record_event,
        batch_handler=record_batch,
        dlq_topic=AUDIT_DLQ,
        max_attempts=max_attempts,
        options={"batch_size": batch_size, "consumer_options": consumer_options or {}},
    )


__all__ = ["CONSUMER_NAME", "audit_consumer", "chain_order", "record_batch", "record_event"]
