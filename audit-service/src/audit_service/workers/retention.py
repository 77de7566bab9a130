"""Exports records past the retention period to JSONL files, each with a signed manifest.

The records stay in the table: the service never deletes (its role cannot). The manifest
names the file, its SHA-256 and the chain links at both ends of the range, so the range can
later be pruned by a DBA and `verify` still joins the genesis to the first remaining record.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from audit_service.domain.export import jsonl_rows
from audit_service.settings import Settings
from audit_service.store.checkpoints import add_archive, latest_archive
from audit_service.store.records import iter_records
from audit_service.store.tables import audit_records
from paygate_common.db import unit_of_work
from paygate_common.worker import Worker

log = logging.getLogger("audit_service.retention")

# One archiver at a time per schema: a second one waits here, then sees the first's manifest
# (READ COMMITTED reads it in the next statement) and archives the next range, not the same.
_LOCK_ARCHIVER = text(
    "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.audit_archiver'))"
)


async def archive_range(
    conn: AsyncSession | AsyncConnection, settings: Settings, *, now: datetime | None = None
) -> tuple[int, int] | None:
    """The next `(from_seq, to_seq)` to archive: contiguous after the last archive, all older
    than the retention period, at most `archive_batch_size` records; None when there is none."""
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=settings.retention_days)
    last = await latest_archive(conn)
    start = (last["to_seq"] + 1) if last else 1
    c = audit_records.c
    first_young = (
        await conn.execute(select(func.min(c.seq)).where(c.seq >= start, c.recorded_at >= cutoff))
    ).scalar_one()
    head = (await conn.execute(select(func.max(c.seq)))).scalar_one()
    if head is None:
        return None
    end = min(
        (first_young - 1) if first_young is not None else head,
        start + settings.archive_batch_size - 1,
    )
    return (start, end) if end >= start else None


def _write(path: Path, chunks: list[bytes]) -> None:
    with open(path, "ab") as handle:
        for chunk in chunks:
            handle.write(chunk)


async def archive_once(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    now: datetime | None = None,
) -> dict[str, Any] | None:
    """Export one range and record its manifest; returns the manifest (None: nothing due)."""
    async with unit_of_work(sessionmaker) as session:
        await session.execute(_LOCK_ARCHIVER)
        span = await archive_range(session, settings, now=now)
        if span is None:
            return None
        from_seq, to_seq = span
        directory = Path(settings.archive_path())
        await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
        final = directory / f"audit-{from_seq:012d}-{to_seq:012d}.jsonl"
        partial = final.with_suffix(".jsonl.partial")
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        digest = hashlib.sha256()
        count, first_prev, last_hash = 0, "", ""
        async for page in iter_records(
            session, page_size=settings.export_page_size, after_seq=from_seq - 1, to_seq=to_seq
        ):
            chunk = jsonl_rows(page)
            digest.update(chunk)
            await asyncio.to_thread(_write, partial, [chunk])
            if not count:
                first_prev = page[0]["prev_hash"]
            count += len(page)
            last_hash = page[-1]["hash"]
        await asyncio.to_thread(os.replace, partial, final)
        manifest = await add_archive(
            session,
            settings.checkpoint_key.get_secret_value().encode(),
            {
                "from_seq": from_seq,
                "to_seq": to_seq,
                "record_count": count,
                "first_prev_hash": first_prev,
                "last_hash": last_hash,
                "location": str(final),
                "sha256": digest.hexdigest(),
            },
        )
    log.info("archived audit records %s..%s to %s", from_seq, to_seq, final)
    return manifest


def retention_worker(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> Worker:
    """Archive every due range each `archive_interval_seconds` (one range, one transaction)."""

    async def archive_due() -> int:
        while await archive_once(sessionmaker, settings):
            pass
        return 0  # every due range is archived: sleep until the next tick

    return Worker("audit retention", archive_due, interval=settings.archive_interval_seconds)
