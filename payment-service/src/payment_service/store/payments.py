"""Queries on payments and attempts; every state change is a guarded `UPDATE ... WHERE status`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, and_, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from paygate_common.worker import claim_due
from payment_service.store.tables import (
    payment_attempts,
    payment_operations,
    payments,
    refunds,
    webhook_events,
)

PaymentRow = Row[Any]
AttemptRow = Row[Any]
RefundRow = Row[Any]
OperationRow = Row[Any]


async def insert_payment(session: AsyncSession, **values: Any) -> PaymentRow | None:
    """The new payment, or None if one already exists for the order (unique order_id)."""
    stmt = (
        pg_insert(payments)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["order_id"])
        .returning(*payments.c)
    )
    return (await session.execute(stmt)).first()


async def insert_direct_payment(session: AsyncSession, **values: Any) -> PaymentRow:
    """A payment without an order (POST /payments)."""
    return (
        await session.execute(pg_insert(payments).values(**values).returning(*payments.c))
    ).one()


async def get_payment(session: AsyncSession, payment_id: uuid.UUID) -> PaymentRow | None:
    return (await session.execute(select(payments).where(payments.c.id == payment_id))).first()


async def lock_payment(session: AsyncSession, payment_id: uuid.UUID) -> PaymentRow | None:
    """The payment, row-locked until the caller's transaction ends (amount checks run under it)."""
    stmt = select(payments).where(payments.c.id == payment_id).with_for_update()
    return (await session.execute(stmt)).first()


async def list_user_payments(
    session: AsyncSession,
    *,
    user_id: uuid.UUID | None,
    limit: int,
    after: tuple[Any, uuid.UUID] | None = None,
) -> Sequence[PaymentRow]:
    """Newest first; `user_id=None` lists everyone's (admins)."""
    query = select(payments)
    if user_id is not None:
        query = query.where(payments.c.user_id == user_id)
    if after is not None:
        query = query.where(tuple_(payments.c.created_at, payments.c.id) < tuple_(*after))
    query = query.order_by(payments.c.created_at.desc(), payments.c.id.desc()).limit(limit)
    return (await session.execute(query)).all()


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


async def claim_due_payments(
    session: AsyncSession, *, limit: int, lease_seconds: float
) -> Sequence[PaymentRow]:
    """Lease up to `limit` due `created` payments so other executors leave them alone."""
    return await claim_due(
        session,
        payments,
        limit=limit,
        lease_seconds=lease_seconds,
        where=[payments.c.status == "created"],
    )


async def claim_due_operations(
    session: AsyncSession, *, limit: int, lease_seconds: float
) -> Sequence[OperationRow]:
    """Lease queued operations and those whose outcome is unknown (to reconcile first)."""
    return await claim_due(
        session,
        payment_operations,
        limit=limit,
        lease_seconds=lease_seconds,
        where=[payment_operations.c.status.in_(["queued", "unknown"])],
    )


async def claim_expired_authorizations(
    session: AsyncSession, *, limit: int, lease_seconds: float
) -> Sequence[PaymentRow]:
    """Lease `requires_capture` payments whose capture window has closed."""
    return await claim_due(
        session,
        payments,
        limit=limit,
        lease_seconds=lease_seconds,
        where=[payments.c.status == "requires_capture"],
        due_column="capture_before",
    )


async def claim_abandoned_actions(
    session: AsyncSession,
    *,
    limit: int,
    lease_seconds: float,
    action_window_seconds: float,
    checkout_ttl_seconds: float,
) -> Sequence[PaymentRow]:
    """Lease `requires_action` payments left waiting too long: at a provider for
    `action_window_seconds` without any change, or an unpaid hosted checkout past its page's
    expiry. Due again (`next_attempt_at`) only after a look-up found no answer."""
    stale_at_provider = and_(
        payments.c.provider_reference.is_not(None),
        payments.c.updated_at
        <= func.now() - func.make_interval(0, 0, 0, 0, 0, 0, action_window_seconds),
    )
    unpaid_checkout_expired = and_(
        payments.c.provider_reference.is_(None),
        payments.c.checkout.is_(True),
        payments.c.created_at
        <= func.now() - func.make_interval(0, 0, 0, 0, 0, 0, checkout_ttl_seconds),
    )
    return await claim_due(
        session,
        payments,
        limit=limit,
        lease_seconds=lease_seconds,
        where=[
            payments.c.status == "requires_action",
            stale_at_provider | unpaid_checkout_expired,
        ],
    )


async def defer_action_check(
    session: AsyncSession, payment_id: uuid.UUID, *, retry_in: float
) -> None:
    """Ask about a still-waiting payment again in `retry_in` seconds (one more look-up counted).

    `updated_at` is left alone: it says how long the payment has waited without progress.
    """
    await session.execute(
        update(payments)
        .where(payments.c.id == payment_id, payments.c.status == "requires_action")
        .values(
            lease_until=None,
            action_checks=payments.c.action_checks + 1,
            next_attempt_at=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, retry_in),
        )
    )


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


# --- operations (capture, void, refund sent to the provider) ------------------------------------


async def insert_operation(session: AsyncSession, **values: Any) -> OperationRow | None:
    """The new operation, or None if one with its idempotency key exists (one per kind)."""
    stmt = (
        pg_insert(payment_operations)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(*payment_operations.c)
    )
    return (await session.execute(stmt)).first()


async def get_operation(session: AsyncSession, operation_id: uuid.UUID) -> OperationRow | None:
    stmt = select(payment_operations).where(payment_operations.c.id == operation_id)
    return (await session.execute(stmt)).first()


async def operation_for_refund(session: AsyncSession, refund_id: uuid.UUID) -> OperationRow | None:
    stmt = select(payment_operations).where(payment_operations.c.refund_id == refund_id)
    return (await session.execute(stmt)).first()


async def open_operation(
    session: AsyncSession, payment_id: uuid.UUID, kind: str
) -> OperationRow | None:
    """The payment's capture or void still waiting for the provider, if any."""
    stmt = select(payment_operations).where(
        payment_operations.c.payment_id == payment_id,
        payment_operations.c.kind == kind,
        payment_operations.c.status.in_(["queued", "in_flight", "unknown"]),
    )
    return (await session.execute(stmt)).first()


async def start_operation(session: AsyncSession, operation_id: uuid.UUID) -> OperationRow | None:
    """queued → in_flight (guarded: of two starters only one wins); None if not ours to send."""
    stmt = (
        update(payment_operations)
        .where(payment_operations.c.id == operation_id, payment_operations.c.status == "queued")
        .values(
            status="in_flight",
            attempt_count=payment_operations.c.attempt_count + 1,
            started_at=func.now(),
            lease_until=None,
        )
        .returning(*payment_operations.c)
    )
    return (await session.execute(stmt)).first()


async def finish_operation(
    session: AsyncSession,
    operation_id: uuid.UUID,
    *,
    from_states: Sequence[str] = ("in_flight",),
    **values: Any,
) -> OperationRow | None:
    stmt = (
        update(payment_operations)
        .where(
            payment_operations.c.id == operation_id,
            payment_operations.c.status.in_(list(from_states)),
        )
        .values(lease_until=None, **values)
        .returning(*payment_operations.c)
    )
    return (await session.execute(stmt)).first()


async def close_refund_operation(
    session: AsyncSession, refund_id: uuid.UUID, **values: Any
) -> None:
    """A refund settled elsewhere (a webhook): its operation needs no more provider calls."""
    await session.execute(
        update(payment_operations)
        .where(
            payment_operations.c.refund_id == refund_id,
            payment_operations.c.status.in_(["queued", "in_flight", "unknown"]),
        )
        .values(finished_at=func.now(), lease_until=None, **values)
    )


async def stale_in_flight_operations(
    session: AsyncSession, *, older_than_seconds: float, limit: int
) -> Sequence[OperationRow]:
    """In-flight operations whose sender died (a crash between commit and answer): → unknown."""
    stale = (
        select(payment_operations.c.id)
        .where(
            payment_operations.c.status == "in_flight",
            payment_operations.c.started_at
            < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, older_than_seconds),
        )
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    stmt = (
        update(payment_operations)
        .where(payment_operations.c.id.in_(stale))
        .values(status="unknown", error="the sender stopped before the provider answered")
        .returning(*payment_operations.c)
    )
    return (await session.execute(stmt)).all()


# --- refunds ---------------------------------------------------------------------------------


async def insert_refund(session: AsyncSession, **values: Any) -> RefundRow | None:
    """The new refund, or None if its `request_key` was seen before."""
    stmt = pg_insert(refunds).values(**values)
    if values.get("request_key"):
        stmt = stmt.on_conflict_do_nothing(index_elements=["request_key"])
    return (await session.execute(stmt.returning(*refunds.c))).first()


async def get_refund(session: AsyncSession, refund_id: uuid.UUID) -> RefundRow | None:
    return (await session.execute(select(refunds).where(refunds.c.id == refund_id))).first()


async def lock_refund(session: AsyncSession, refund_id: uuid.UUID) -> RefundRow | None:
    stmt = select(refunds).where(refunds.c.id == refund_id).with_for_update()
    return (await session.execute(stmt)).first()


async def refund_by_request_key(session: AsyncSession, request_key: str) -> RefundRow | None:
    stmt = select(refunds).where(refunds.c.request_key == request_key)
    return (await session.execute(stmt)).first()


async def get_refund_by_reference(session: AsyncSession, reference: str) -> RefundRow | None:
    stmt = select(refunds).where(refunds.c.provider_reference == reference)
    return (await session.execute(stmt)).first()


async def list_refunds(session: AsyncSession, payment_id: uuid.UUID) -> Sequence[RefundRow]:
    stmt = (
        select(refunds)
        .where(refunds.c.payment_id == payment_id)
        .order_by(refunds.c.created_at.desc(), refunds.c.id.desc())
    )
    return (await session.execute(stmt)).all()


async def update_refund(
    session: AsyncSession, refund_id: uuid.UUID, *, from_status: str, **values: Any
) -> RefundRow | None:
    stmt = (
        update(refunds)
        .where(refunds.c.id == refund_id, refunds.c.status == from_status)
        .values(updated_at=func.now(), **values)
        .returning(*refunds.c)
    )
    return (await session.execute(stmt)).first()
