"""Message template versions: append-only; the highest version per (event type, channel) is live."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.store.tables import MessageTemplate


async def latest_templates(session: AsyncSession) -> dict[tuple[str, str], MessageTemplate]:
    newest = (
        select(
            MessageTemplate.event_type,
            MessageTemplate.channel,
            func.max(MessageTemplate.version).label("version"),
        )
        .group_by(MessageTemplate.event_type, MessageTemplate.channel)
        .subquery()
    )
    rows = (
        await session.scalars(
            select(MessageTemplate).join(
                newest,
                (MessageTemplate.event_type == newest.c.event_type)
                & (MessageTemplate.channel == newest.c.channel)
                & (MessageTemplate.version == newest.c.version),
            )
        )
    ).all()
    return {(r.event_type, r.channel): r for r in rows}


async def save_version(
    session: AsyncSession,
    *,
    event_type: str,
    channel: str,
    parts: dict[str, str],
    created_by: uuid.UUID | None,
) -> MessageTemplate:
    # Two operators saving at once get consecutive versions, not a unique-constraint error.
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
        {"k": f"notification-template:{event_type}:{channel}"},
    )
    current = (
        await session.execute(
            select(func.coalesce(func.max(MessageTemplate.version), 0)).where(
                MessageTemplate.event_type == event_type, MessageTemplate.channel == channel
            )
        )
    ).scalar_one()
    row = MessageTemplate(
        event_type=event_type,
        channel=channel,
        version=current + 1,
        parts=parts,
        created_by=created_by,
    )
    session.add(row)
    await session.flush()
    return row


async def versions(
    session: AsyncSession, event_type: str, channel: str
) -> Sequence[MessageTemplate]:
    return (
        await session.scalars(
            select(MessageTemplate)
            .where(MessageTemplate.event_type == event_type, MessageTemplate.channel == channel)
            .order_by(MessageTemplate.version.desc())
        )
    ).all()
