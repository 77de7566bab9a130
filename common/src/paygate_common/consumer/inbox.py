"""The consumer's inbox: which events a consumer has applied (or dead-lettered), by event id."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from paygate_common.outbox.schema import inbox_table

# The whole batch's inbox rows in one statement; what comes back is what this consumer had not
# seen yet (a duplicate conflicts and returns nothing).
_CLAIM_BATCH = text(
    """
    INSERT INTO inbox (consumer, event_id, outcome)
    SELECT :consumer, id, 'applied' FROM unnest(CAST(:ids AS uuid[])) AS id
    ON CONFLICT (consumer, event_id) DO NOTHING
    RETURNING event_id
    """
)


async def claim_batch(
    session: AsyncSession, consumer: str, event_ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    """Insert the inbox rows of a batch; returns the ids this consumer had not seen before."""
    result = await session.execute(_CLAIM_BATCH, {"consumer": consumer, "ids": list(event_ids)})
    return {row[0] for row in result}


async def claim_event(
    session: AsyncSession, consumer: str, event_id: uuid.UUID, *, replay: bool
) -> bool:
    """Insert one inbox row; False when this consumer already saw the event.

    A `replay` (an operator republished a dead letter for this consumer) takes over the
    consumer's dead-lettered row; an applied row still makes it a duplicate.
    """
    stmt = pg_insert(inbox_table).values(consumer=consumer, event_id=event_id, outcome="applied")
    if replay:
        stmt = stmt.on_conflict_do_update(
            index_elements=["consumer", "event_id"],
            set_={"outcome": "applied", "processed_at": text("now()")},
            where=inbox_table.c.outcome == "dead_lettered",
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=["consumer", "event_id"])
    result = await session.execute(stmt.returning(inbox_table.c.event_id))
    return result.first() is not None


async def mark_dead_lettered(session: AsyncSession, consumer: str, event_id: uuid.UUID) -> None:
    """Record that `consumer` gave up on the event (a replay may apply it later)."""
    stmt = pg_insert(inbox_table).values(
        consumer=consumer, event_id=event_id, outcome="dead_lettered"
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["consumer", "event_id"],
        set_={"outcome": "dead_lettered", "processed_at": text("now()")},
    )
    await session.execute(stmt)
