"""Signed checkpoints and archive manifests: written once, read back for verification."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from audit_service.domain.chain import archive_statement, checkpoint_statement, sign
from audit_service.store.records import chain_head, first_seq, lock_chain
from audit_service.store.tables import audit_archives, audit_checkpoints

Conn = AsyncSession | AsyncConnection


async def latest_checkpoint(conn: Conn) -> dict[str, Any] | None:
    row = (
        await conn.execute(
            select(audit_checkpoints).order_by(audit_checkpoints.c.id.desc()).limit(1)
        )
    ).first()
    return dict(row._mapping) if row else None


async def write_checkpoint(conn: Conn, key: bytes) -> dict[str, Any] | None:
    """Sign the chain's current `(count, head seq, head hash)`; None when nothing changed.

    Taken under the chain lock so the head and the count belong to the same moment.
    """
    await lock_chain(conn)
    head = await chain_head(conn)
    if head.seq == 0:
        return None
    latest = await latest_checkpoint(conn)
    if latest is not None and latest["head_seq"] == head.seq and latest["head_hash"] == head.hash:
        return None
    first = await first_seq(conn) or 1
    # The chain is gapless (verify checks it), so the count follows from its two ends.
    statement = checkpoint_statement(
        record_count=head.seq - first + 1, head_seq=head.seq, head_hash=head.hash
    )
    row = {
        **statement,
        "created_at": datetime.now(UTC),
        "signature": sign(key, statement),
    }
    result = await conn.execute(
        insert(audit_checkpoints).values(**row).returning(audit_checkpoints)
    )
    return dict(result.one()._mapping)


async def latest_archive(conn: Conn) -> dict[str, Any] | None:
    row = (
        await conn.execute(select(audit_archives).order_by(audit_archives.c.to_seq.desc()).limit(1))
    ).first()
    return dict(row._mapping) if row else None


async def archives(conn: Conn) -> list[dict[str, Any]]:
    rows = (await conn.execute(select(audit_archives).order_by(audit_archives.c.from_seq))).all()
    return [dict(r._mapping) for r in rows]


async def add_archive(conn: Conn, key: bytes, manifest: dict[str, Any]) -> dict[str, Any]:
    statement = archive_statement(manifest)
    row = {**statement, "created_at": datetime.now(UTC), "signature": sign(key, statement)}
    result = await conn.execute(insert(audit_archives).values(**row).returning(audit_archives))
    return dict(result.one()._mapping)
