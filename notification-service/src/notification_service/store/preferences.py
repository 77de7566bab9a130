"""Queries on notification preferences and Web Push subscriptions."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.store.tables import NotificationPreference, PushSubscription


async def preferences_of(
    session: AsyncSession, user_id: uuid.UUID
) -> NotificationPreference | None:
    return await session.get(NotificationPreference, user_id)


async def preferences_of_users(
    session: AsyncSession, user_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, NotificationPreference]:
    """The stored preferences of several customers in one query (absent: the defaults)."""
    if not user_ids:
        return {}
    rows = await session.scalars(
        select(NotificationPreference).where(NotificationPreference.user_id.in_(sorted(user_ids)))
    )
    return {row.user_id: row for row in rows}


async def users_with_subscription(
    session: AsyncSession, user_ids: Collection[uuid.UUID]
) -> set[uuid.UUID]:
    """Which of these customers have at least one Web Push subscription, in one query."""
    if not user_ids:
        return set()
    rows = await session.scalars(
        select(PushSubscription.user_id)
        .where(PushSubscription.user_id.in_(sorted(user_ids)))
        .distinct()
    )
    return set(rows)


async def upsert_preferences(
    session: AsyncSession, user_id: uuid.UUID, values: dict[str, bool]
) -> NotificationPreference:
    stmt = (
        insert(NotificationPreference)
        .values(user_id=user_id, **values)
        .on_conflict_do_update(
            index_elements=["user_id"],
            set_={**values, "updated_at": func.now()},
        )
        .returning(NotificationPreference)
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(stmt)).one()


async def upsert_subscription(session: AsyncSession, **values: Any) -> PushSubscription:
    """One row per push endpoint; a browser re-subscribing replaces its keys and owner."""
    update = {k: v for k, v in values.items() if k not in ("id", "endpoint")}
    stmt = (
        insert(PushSubscription)
        .values(**values)
        .on_conflict_do_update(index_elements=["endpoint"], set_=update)
        .returning(PushSubscription)
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(stmt)).one()


async def subscription_by_endpoint(session: AsyncSession, endpoint: str) -> PushSubscription | None:
    return (
        await session.scalars(
            select(PushSubscription).where(PushSubscription.endpoint == endpoint).with_for_update()
        )
    ).one_or_none()


async def subscriptions_of(session: AsyncSession, user_id: uuid.UUID) -> Sequence[PushSubscription]:
    return (
        await session.scalars(
            select(PushSubscription)
            .where(PushSubscription.user_id == user_id)
            .order_by(PushSubscription.created_at)
        )
    ).all()


async def has_subscription(session: AsyncSession, user_id: uuid.UUID) -> bool:
    stmt = select(exists().where(PushSubscription.user_id == user_id))
    return bool((await session.execute(stmt)).scalar())


async def delete_subscription(session: AsyncSession, subscription_id: uuid.UUID) -> None:
    await session.execute(delete(PushSubscription).where(PushSubscription.id == subscription_id))


async def delete_user_subscription(
    session: AsyncSession, user_id: uuid.UUID, subscription_id: uuid.UUID
) -> bool:
    result = await session.execute(
        delete(PushSubscription)
        .where(PushSubscription.id == subscription_id, PushSubscription.user_id == user_id)
        .returning(PushSubscription.id)
    )
    return result.scalar_one_or_none() is not None


async def subscriptions_not_under(session: AsyncSession, key_id: str) -> Sequence[PushSubscription]:
    return (
        await session.scalars(
            select(PushSubscription).where(PushSubscription.auth_key_id != key_id).with_for_update()
        )
    ).all()


async def set_sealed_auth(
    session: AsyncSession, subscription_id: uuid.UUID, key_id: str, blob: bytes
) -> None:
    await session.execute(
        update(PushSubscription)
        .where(PushSubscription.id == subscription_id)
        .values(auth_key_id=key_id, auth_sealed=blob)
    )
