"""Queries on `orders`: insert, fetch, keyset listing, guarded status updates, stale pending."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Row, and_, func, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from order_service.store.tables import orders
from paygate_common.outbox import (
    OUTBOX_COLUMNS,
    OUTBOX_NOTIFY,
    OUTBOX_VALUES,
    OutgoingEvent,
    outbox_params,
)


@dataclass(frozen=True)
class OrderRecord:
    id: uuid.UUID
    user_id: uuid.UUID
    amount: int
    currency: str
    description: str | None
    payment_method_id: uuid.UUID | None
    status: str
    cancel_reason: str | None
    payment_id: uuid.UUID | None
    payment_provider: str | None
    failure_code: str | None
    failure_message: str | None
    next_action: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Row[Any]) -> OrderRecord:
        return cls(**row._mapping)


_COLUMNS = [orders.c[name] for name in OrderRecord.__dataclass_fields__]


async def insert_order(
    session: AsyncSession,
    *,
    order_id: uuid.UUID,
    user_id: uuid.UUID,
    amount: int,
    currency: str,
    description: str | None,
    payment_method_id: uuid.UUID | None,
) -> OrderRecord:
    row = (
        await session.execute(
            orders.insert()
            .values(
                id=order_id,
                user_id=user_id,
                amount=amount,
                currency=currency,
                description=description,
                payment_method_id=payment_method_id,
                status="pending",
            )
            .returning(*_COLUMNS)
        )
    ).one()
    return OrderRecord.from_row(row)


_ORDER_COLUMNS = ", ".join(OrderRecord.__dataclass_fields__)
# The order, its event in the outbox and the relay's NOTIFY: one statement, one round trip.
_INSERT_ORDER_WITH_EVENT = text(
    f"""
    WITH placed AS (
      INSERT INTO orders (id, user_id, amount, currency, description, payment_method_id, status)
      VALUES (:id, :user_id, :amount, :currency, :description, :payment_method_id, 'pending')
      RETURNING {_ORDER_COLUMNS}
    ), announced AS (
      INSERT INTO outbox ({OUTBOX_COLUMNS}) SELECT {OUTBOX_VALUES} FROM placed RETURNING 1
    )
    SELECT {_ORDER_COLUMNS}, {OUTBOX_NOTIFY} AS notified FROM placed, announced
    """  # noqa: S608 - column lists are constants; every value is a bound parameter
).columns(*_COLUMNS)


async def insert_order_with_event(
    session: AsyncSession,
    *,
    order_id: uuid.UUID,
    user_id: uuid.UUID,
    amount: int,
    currency: str,
    description: str | None,
    payment_method_id: uuid.UUID | None,
    event: OutgoingEvent,
) -> OrderRecord:
    """`insert_order` and `add_event` of its event in one round trip."""
    row = (
        await session.execute(
            _INSERT_ORDER_WITH_EVENT,
            {
                "id": order_id,
                "user_id": user_id,
                "amount": amount,
                "currency": currency,
                "description": description,
                "payment_method_id": payment_method_id,
                **outbox_params(event),
            },
        )
    ).one()
    return OrderRecord(**{name: row._mapping[name] for name in OrderRecord.__dataclass_fields__})


async def fetch_order(session: AsyncSession, order_id: uuid.UUID) -> OrderRecord | None:
    row = (await session.execute(select(*_COLUMNS).where(orders.c.id == order_id))).one_or_none()
    return None if row is None else OrderRecord.from_row(row)


async def lock_order(session: AsyncSession, order_id: uuid.UUID) -> OrderRecord | None:
    stmt = select(*_COLUMNS).where(orders.c.id == order_id).with_for_update()
    row = (await session.execute(stmt)).one_or_none()
    return None if row is None else OrderRecord.from_row(row)


async def list_user_orders(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None = None,
) -> list[OrderRecord]:
    """Newest first; `after` is the (created_at, id) of the last order of the previous page."""
    query = select(*_COLUMNS).where(orders.c.user_id == user_id)
    if after is not None:
        query = query.where(tuple_(orders.c.created_at, orders.c.id) < tuple_(*after))
    query = query.order_by(orders.c.created_at.desc(), orders.c.id.desc()).limit(limit)
    return [OrderRecord.from_row(r) for r in (await session.execute(query)).all()]


async def transition_status(
    session: AsyncSession,
    *,
    order_id: uuid.UUID,
    new_status: str,
    allowed_from: Collection[str],
    summary: dict[str, Any],
) -> bool:
    """Atomic guarded move: only from `allowed_from`, so a late event can never go backwards."""
    result = await session.execute(
        update(orders)
        .where(orders.c.id == order_id, orders.c.status.in_(sorted(allowed_from)))
        .values(status=new_status, updated_at=func.now(), **summary)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def current_status(session: AsyncSession, order_id: uuid.UUID) -> str | None:
    return (
        await session.execute(select(orders.c.status).where(orders.c.id == order_id))
    ).scalar_one_or_none()


# A round of guarded moves in one statement: each row moves only from its own allowed states.
# `cancel_reason` is written only by a move that sets it; JSON `next_action` travels as text.
_TRANSITION_MANY = text(
    """
    UPDATE orders AS o SET
        status = u.status, updated_at = now(), payment_id = u.payment_id,
        payment_provider = u.payment_provider, failure_code = u.failure_code,
        failure_message = u.failure_message, next_action = CAST(u.next_action AS jsonb),
        cancel_reason = CASE WHEN u.sets_reason THEN u.cancel_reason ELSE o.cancel_reason END
    FROM unnest(
        CAST(:ids AS uuid[]), CAST(:statuses AS text[]), CAST(:sources AS text[]),
        CAST(:payment_ids AS uuid[]), CAST(:providers AS text[]), CAST(:codes AS text[]),
        CAST(:messages AS text[]), CAST(:actions AS text[]), CAST(:sets_reason AS boolean[]),
        CAST(:reasons AS text[])
    ) AS u(
        id, status, sources, payment_id, payment_provider, failure_code, failure_message,
        next_action, sets_reason, cancel_reason
    )
    WHERE o.id = u.id AND o.status = ANY(string_to_array(u.sources, ','))
    RETURNING o.id
    """
)


async def transition_statuses(
    session: AsyncSession,
    moves: Collection[tuple[uuid.UUID, str, Collection[str], dict[str, Any]]],
) -> set[uuid.UUID]:
    """`transition_status` for several orders (each at most once) in one statement.

    `moves` are (order id, new status, allowed from, summary); returns the orders that moved.
    """
    if not moves:
        return set()
    rows = list(moves)
    result = await session.execute(
        _TRANSITION_MANY,
        {
            "ids": [m[0] for m in rows],
            "statuses": [m[1] for m in rows],
            "sources": [",".join(sorted(m[2])) for m in rows],
            "payment_ids": [m[3]["payment_id"] for m in rows],
            "providers": [m[3]["payment_provider"] for m in rows],
            "codes": [m[3]["failure_code"] for m in rows],
            "messages": [m[3]["failure_message"] for m in rows],
            # The JSON null the one-row UPDATE writes for a None (JSONB's default), not SQL NULL.
            "actions": [orjson.dumps(m[3]["next_action"]).decode() for m in rows],
            "sets_reason": ["cancel_reason" in m[3] for m in rows],
            "reasons": [m[3].get("cancel_reason") for m in rows],
        },
    )
    return {row[0] for row in result}


async def current_statuses(
    session: AsyncSession, order_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """Several orders' statuses in one query (an unknown order is absent)."""
    if not order_ids:
        return {}
    result = await session.execute(
        select(orders.c.id, orders.c.status).where(orders.c.id.in_(sorted(set(order_ids))))
    )
    return {row.id: row.status for row in result}


async def cancel_stale_pending(
    session: AsyncSession, *, older_than_seconds: float, reason: str, limit: int
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Cancel up to `limit` orders pending for too long; returns their (id, user_id).

    SKIP LOCKED lets several replicas sweep at once, and skips an order a payment event is
    updating right now (that event decides it).
    """
    stale = (
        select(orders.c.id)
        .where(
            orders.c.status == "pending",
            orders.c.created_at
            < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, older_than_seconds),
        )
        .order_by(orders.c.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("stale")
    )
    result = await session.execute(
        update(orders)
        .where(and_(orders.c.id == stale.c.id, orders.c.status == "pending"))
        .values(status="cancelled", cancel_reason=reason, updated_at=func.now())
        .returning(orders.c.id, orders.c.user_id)
    )
    return [(row.id, row.user_id) for row in result.all()]


__all__ = [
    "OrderRecord",
    "cancel_stale_pending",
    "current_status",
    "fetch_order",
    "insert_order",
    "insert_order_with_event",
    "list_user_orders",
    "lock_order",
    "transition_status",
]
