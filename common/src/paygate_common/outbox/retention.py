"""Retention of processed rows: published outbox rows and old inbox rows, deleted in batches."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("paygate.outbox")


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
