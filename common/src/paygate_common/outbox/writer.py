"""Writing events: outbox rows (and the relay's NOTIFY) in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from paygate_common.events.envelope import EventEnvelope
from paygate_common.kafka import envelope_headers

CHANNEL_PREFIX = "paygate_outbox_"  # spelled out in _INSERT_EVENTS and OUTBOX_NOTIFY too

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
