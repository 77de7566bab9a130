"""Queries on payments and attempts; every state change is a guarded `UPDATE ... WHERE status`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, and_, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.store.tables import payment_attempts, payments, webhook_events

PaymentRow = Row[Any]
AttemptRow = Row[Any]


async def insert_payment(session: AsyncSession, **values: Any) -> PaymentRow | None:
    """The new payment, or None if one already exists for the order (unique order_id)."""
    stmt = (
        pg_insert(payments)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["order_id"])
        .returning(*payments.c)
    )
    return (await session.execute(stmt)).first()


async def get_payment(session: AsyncSession, payment_id: uuid.UUID) -> PaymentRow | None:
    return (await session.execute(select(payments).where(payments.c.id == payment_id))).first()


async def get_payment_by_order(session: AsyncSession, order_id: uuid.UUID) -> PaymentRow | None:
    stmt = select(payments).where(payments.c.order_id == order_id)
    return (await session.execute(stmt)).first()


async def get_payment_by_reference(
    session: AsyncSession, provider: str, reference: str
) -> PaymentRow | None:
    stmt = select(payments).where(
        payments.c.provider == provider, payments.c.provider_reference == reference
    )
    return (await session.execute(stmt)).first()


async def list_attempts(session: AsyncSession, payment_id: uuid.UUID) -> Sequence[AttemptRow]:
    stmt = (
        select(payment_attempts)
        .where(payment_attempts.c.payment_id == payment_id)
        .order_by(payment_attempts.c.attempt_no)
    )
    return (await session.execute(stmt)).all()


async def transition(
    session: AsyncSession,
    payment_id: uuid.UUID,
    *,
    to: str,
    from_states: Sequence[str],
    expect: dict[str, Any] | None = None,
    **values: Any,
) -> PaymentRow | None:
    """Move a payment to `to` only from `from_states` (and matching `expect`); else None."""
    guards = [payments.c[name] == value for name, value in (expect or {}).items()]
    stmt = (
        update(payments)
        .where(payments.c.id == payment_id, payments.c.status.in_(list(from_states)), *guards)
        .values(status=to, updated_at=func.now(), **values)
        .returning(*payments.c)
    )
    return (await session.execute(stmt)).first()


async def update_payment(
    session: AsyncSession, payment_id: uuid.UUID, *, in_states: Sequence[str], **values: Any
) -> PaymentRow | None:
    """Change fields (not the status) of a payment that is still in one of `in_states`."""
    stmt = (
        update(payments)
        .where(payments.c.id == payment_id, payments.c.status.in_(list(in_states)))
        .values(updated_at=func.now(), **values)
        .returning(*payments.c)
    )
    return (await session.execute(stmt)).first()


_CLAIM_DUE = text(
    """
    UPDATE payments SET lease_until = now() + make_interval(secs => :lease)
    WHERE id IN (
        SELECT id FROM payments
        WHERE status = 'created'
          AND next_attempt_at <= now()
          AND (lease_until IS NULL OR lease_until < now())
        ORDER BY next_attempt_at
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    RETURNING *
    """
)


async def claim_due_payments(
    session: AsyncSession, *, limit: int, lease_seconds: float
) -> Sequence[PaymentRow]:
    """Lease up to `limit` due `created` payments so other executors leave them alone."""
    result = await session.execute(_CLAIM_DUE, {"limit": limit, "lease": lease_seconds})
    return result.all()


async def release_payment(
    session: AsyncSession, payment_id: uuid.UUID, *, retry_in: float, **values: Any
) -> None:
    """Give a leased `created` payment back, due again in `retry_in` seconds."""
    await session.execute(
        update(payments)
        .where(payments.c.id == payment_id, payments.c.status == "created")
        .values(
            lease_until=None,
            next_attempt_at=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, retry_in),
            updated_at=func.now(),
            **values,
        )
    )


async def insert_attempt(session: AsyncSession, **values: Any) -> None:
    await session.execute(pg_insert(payment_attempts).values(**values))


async def finish_attempt(
    session: AsyncSession,
    payment_id: uuid.UUID,
    attempt_no: int,
    *,
    from_states: Sequence[str] = ("in_flight",),
    **values: Any,
) -> bool:
    stmt = (
        update(payment_attempts)
        .where(
            payment_attempts.c.payment_id == payment_id,
            payment_attempts.c.attempt_no == attempt_no,
            payment_attempts.c.status.in_(list(from_states)),
        )
        .values(finished_at=func.now(), **values)
        .returning(payment_attempts.c.id)
    )
    return (await session.execute(stmt)).first() is not None


async def finish_unknown_attempts(
    session: AsyncSession, payment_id: uuid.UUID, **values: Any
) -> None:
    """Settle every attempt of a payment whose outcome was unknown."""
    await session.execute(
        update(payment_attempts)
        .where(
            payment_attempts.c.payment_id == payment_id,
            payment_attempts.c.status == "unknown",
        )
        .values(**values)
    )


async def lock_stale_in_flight(
    session: AsyncSession, *, older_than_seconds: float, limit: int
) -> Sequence[Row[Any]]:
    """In-flight attempts older than the threshold, locked (with their payment) for this pass."""
    stmt = (
        select(payment_attempts, payments.c.user_id)
        .join(payments, payments.c.id == payment_attempts.c.payment_id)
        .where(
            and_(
                payment_attempts.c.status == "in_flight",
                payment_attempts.c.started_at
                < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, older_than_seconds),
            )
        )
        .order_by(payment_attempts.c.started_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (await session.execute(stmt)).all()


async def record_webhook_event(
    session: AsyncSession, *, event_id: str, provider: str, event_type: str
) -> bool:
    """False if this provider event was seen before (the caller then drops it)."""
    stmt = (
        pg_insert(webhook_events)
        .values(event_id=event_id, provider=provider, event_type=event_type)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(webhook_events.c.event_id)
    )
    return (await session.execute(stmt)).first() is not None


async def link_webhook_event(session: AsyncSession, event_id: str, payment_id: uuid.UUID) -> None:
    await session.execute(
        update(webhook_events)
        .where(webhook_events.c.event_id == event_id)
        .values(payment_id=payment_id)
    )
