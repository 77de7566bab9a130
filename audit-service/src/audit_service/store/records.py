"""Appending to the chain (serialised by a transaction-scoped advisory lock) and reading it."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, insert, or_, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session

from audit_service.domain.chain import GENESIS_HASH, record_hash
from audit_service.store.tables import audit_records

# One chain per schema: every appender in the schema takes this lock for its transaction, so
# two consumer processes can never both link a record to the same head (a fork).
_LOCK_CHAIN = text("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.audit_chain'))")
_HEAD = select(audit_records.c.seq, audit_records.c.hash).order_by(audit_records.c.seq.desc())


@dataclass(frozen=True)
class ChainHead:
    seq: int
    hash: str


def _lock_chain(conn: Session | Connection) -> None:
    conn.execute(_LOCK_CHAIN)


def _chain_head(conn: Session | Connection) -> ChainHead:
    row = conn.execute(_HEAD.limit(1)).first()
    return ChainHead(row.seq, row.hash) if row else ChainHead(0, GENESIS_HASH)


async def lock_chain(session: AsyncSession | AsyncConnection) -> None:
    await session.execute(_LOCK_CHAIN)


async def chain_head(session: AsyncSession | AsyncConnection) -> ChainHead:
    row = (await session.execute(_HEAD.limit(1))).first()
    return ChainHead(row.seq, row.hash) if row else ChainHead(0, GENESIS_HASH)


def append_records_sync(
    conn: Session | Connection, drafts: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Link and insert drafts (from `draft_record`) in order; returns the records written.

    Drafts whose event is already recorded are skipped, so a redelivered event stays one
    record. The caller's transaction holds the chain lock until it commits. Synchronous so it
    can also run inside a session's `before_commit` hook (see `events/handlers.py`).
    """
    if not drafts:
        return []
    _lock_chain(conn)
    event_ids = [d["event_id"] for d in drafts]
    seen = set(
        conn.execute(
            select(audit_records.c.event_id).where(audit_records.c.event_id.in_(event_ids))
        ).scalars()
    )
    head = _chain_head(conn)
    seq, prev = head.seq, head.hash
    records: list[dict[str, Any]] = []
    for draft in drafts:
        if draft["event_id"] in seen:
            continue
        seen.add(draft["event_id"])
        seq += 1
        record = {**draft, "seq": seq, "prev_hash": prev}
        record["hash"] = prev = record_hash(prev, record)
        records.append(record)
    # asyncpg caps a statement at 32767 parameters: 19 columns per row.
    for start in range(0, len(records), 1000):
        conn.execute(insert(audit_records), records[start : start + 1000])
    return records


async def append_records(
    session: AsyncSession | AsyncConnection, drafts: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """`append_records_sync` from async code."""
    if not drafts:
        return []
    return await session.run_sync(append_records_sync, drafts)


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordFilter:
    actor: str | None = None
    action: str | None = None
    entity_type: str | None = None
    entity_id: str | None = None
    request_id: str | None = None
    occurred_from: datetime | None = None
    occurred_to: datetime | None = None

    def apply(self, query: Select[Any]) -> Select[Any]:
        c = audit_records.c
        conditions = []
        if self.actor is not None:
            conditions.append(c.actor_id == self.actor)
        if self.action is not None:
            # `payment.*` selects every payment transition.
            if self.action.endswith(".*"):
                conditions.append(c.action.startswith(self.action[:-1], autoescape=True))
            else:
                conditions.append(c.action == self.action)
        if self.entity_type is not None:
            conditions.append(c.entity_type == self.entity_type)
        if self.entity_id is not None:
            conditions.append(c.entity_id == self.entity_id)
        if self.request_id is not None:
            conditions.append(c.request_id == self.request_id)
        if self.occurred_from is not None:
            conditions.append(c.occurred_at >= self.occurred_from)
        if self.occurred_to is not None:
            conditions.append(c.occurred_at < self.occurred_to)
        return query.where(and_(*conditions)) if conditions else query


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int | None:
    """The seq a cursor points after; None when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = raw.partition(":")
        seq = int(value)
    except (ValueError, UnicodeDecodeError):
        return None
    return seq if kind == "seq" and seq > 0 else None


async def list_records(
    session: AsyncSession,
    flt: RecordFilter,
    *,
    limit: int,
    before_seq: int | None = None,
) -> tuple[list[dict[str, Any]], int | None]:
    """Newest first; returns the page and the seq the next page starts below (or None)."""
    query = flt.apply(select(audit_records))
    if before_seq is not None:
        query = query.where(audit_records.c.seq < before_seq)
    rows = (
        await session.execute(query.order_by(audit_records.c.seq.desc()).limit(limit + 1))
    ).all()
    items = [dict(r._mapping) for r in rows[:limit]]
    return items, (items[-1]["seq"] if len(rows) > limit else None)


async def entity_history(
    session: AsyncSession,
    entity_type: str,
    entity_id: str,
    *,
    limit: int,
    after_seq: int | None = None,
) -> tuple[list[dict[str, Any]], int | None]:
    """Oldest first: the entity's own records and the events keyed by it (an order's payments)."""
    c = audit_records.c
    query = select(audit_records).where(
        or_(
            and_(c.entity_type == entity_type, c.entity_id == entity_id),
            c.aggregate_id == entity_id,
        )
    )
    if after_seq is not None:
        query = query.where(c.seq > after_seq)
    rows = (await session.execute(query.order_by(c.seq).limit(limit + 1))).all()
    items = [dict(r._mapping) for r in rows[:limit]]
    return items, (items[-1]["seq"] if len(rows) > limit else None)


async def get_record(session: AsyncSession, record_id: Any) -> dict[str, Any] | None:
    row = (
        await session.execute(select(audit_records).where(audit_records.c.id == record_id))
    ).first()
    return dict(row._mapping) if row else None


async def iter_records(
    conn: AsyncSession | AsyncConnection,
    *,
    page_size: int,
    flt: RecordFilter | None = None,
    after_seq: int = 0,
    to_seq: int | None = None,
) -> AsyncIterator[list[dict[str, Any]]]:
    """Pages of records in chain order (keyset on seq): memory stays one page whatever the size."""
    while True:
        query = select(audit_records).where(audit_records.c.seq > after_seq)
        if to_seq is not None:
            query = query.where(audit_records.c.seq <= to_seq)
        if flt is not None:
            query = flt.apply(query)
        rows = (await conn.execute(query.order_by(audit_records.c.seq).limit(page_size))).all()
        if not rows:
            return
        page = [dict(r._mapping) for r in rows]
        yield page
        if len(rows) < page_size:
            return
        after_seq = page[-1]["seq"]


async def count_records(conn: AsyncSession | AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(audit_records))).scalar_one())


async def first_seq(conn: AsyncSession | AsyncConnection) -> int | None:
    value = (await conn.execute(select(func.min(audit_records.c.seq)))).scalar_one()
    return int(value) if value is not None else None
