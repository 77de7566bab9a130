"""Read queries: a user's transactions, balances, analytics, the trial balance, reconciliation."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from transaction_service.domain.accounts import AccountKind
from transaction_service.store.tables import (
    journal_entries,
    journal_lines,
    ledger_accounts,
    transactions,
)


async def user_version(session: AsyncSession, user_id: uuid.UUID) -> int:
    """Grows with every change to the user's transactions (an index-only max)."""
    result = await session.execute(
        select(func.coalesce(func.max(transactions.c.version), 0)).where(
            transactions.c.user_id == user_id
        )
    )
    return int(result.scalar_one())


async def list_transactions(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
    status: str | None,
    currency: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
) -> list[Any]:
    t = transactions.c
    query = select(transactions).where(t.user_id == user_id)
    if status:
        query = query.where(t.status == status)
    if currency:
        query = query.where(t.currency == currency)
    if created_from:
        query = query.where(t.created_at >= created_from)
    if created_to:
        query = query.where(t.created_at < created_to)
    if after is not None:
        at, last_id = after
        query = query.where(or_(t.created_at < at, and_(t.created_at == at, t.id < last_id)))
    query = query.order_by(t.created_at.desc(), t.id.desc()).limit(limit)
    return list((await session.execute(query)).all())


async def fetch_transaction(session: AsyncSession, payment_id: uuid.UUID) -> Any:
    result = await session.execute(select(transactions).where(transactions.c.id == payment_id))
    return result.first()


async def entries_for_payment(session: AsyncSession, payment_id: uuid.UUID) -> list[Any]:
    e, line, a = journal_entries.c, journal_lines.c, ledger_accounts.c
    query = (
        select(
            e.id.label("entry_id"),
            e.description,
            e.posted_at,
            a.kind,
            a.owner,
            line.currency,
            line.amount,
        )
        .select_from(
            journal_entries.join(journal_lines, line.entry_id == e.id).join(
                ledger_accounts, a.id == line.account_id
            )
        )
        .where(e.payment_id == payment_id)
        .order_by(e.id, line.id)
    )
    return list((await session.execute(query)).all())


async def balances(session: AsyncSession, user_id: uuid.UUID) -> list[Any]:
    a = ledger_accounts.c
    query = (
        select(
            a.currency,
            func.sum(
                case(
                    (
                        a.kind == AccountKind.MERCHANT_AVAILABLE.value,
                        a.credits_posted - a.debits_posted,
                    ),
                    else_=0,
                )
            ).label("available"),
            func.sum(
                case(
                    (
                        a.kind == AccountKind.MERCHANT_PENDING.value,
                        a.credits_posted - a.debits_posted,
                    ),
                    else_=0,
                )
            ).label("pending"),
        )
        .where(
            a.owner == str(user_id),
            a.kind.in_([AccountKind.MERCHANT_AVAILABLE.value, AccountKind.MERCHANT_PENDING.value]),
        )
        .group_by(a.currency)
        .order_by(a.currency)
    )
    return list((await session.execute(query)).all())


async def summary(
    session: AsyncSession, *, user_id: uuid.UUID | None, period: str, currency: str | None
) -> list[Any]:
    """Per period (UTC) and currency: payments captured, volume, net fees, refunds."""
    e = journal_entries.c
    bucket = func.date_trunc(
        literal_column(f"'{'day' if period == 'day' else 'month'}'"),
        func.timezone("UTC", e.posted_at),
    )
    query = select(
        bucket.label("period_start"),
        e.currency,
        func.count(func.distinct(e.payment_id)).filter(e.captured > 0).label("count"),
        func.coalesce(func.sum(e.captured), 0).label("volume"),
        func.coalesce(func.sum(e.fees), 0).label("fees"),
        func.coalesce(func.sum(e.refunded), 0).label("refunds"),
        func.count(func.distinct(e.payment_id)).filter(e.refunded > 0).label("refund_count"),
    ).where(e.kind == "payment")
    if user_id is not None:
        query = query.where(e.user_id == user_id)
    if currency:
        query = query.where(e.currency == currency)
    query = query.group_by(bucket, e.currency).order_by(bucket.desc(), e.currency)
    return list((await session.execute(query)).all())


async def trial_balance(session: AsyncSession) -> list[Any]:
    """Total debits and credits per currency, summed over every journal line."""
    line = journal_lines.c
    query = (
        select(
            line.currency,
            func.coalesce(func.sum(line.amount).filter(line.amount > 0), 0).label("debits"),
            func.coalesce(-func.sum(line.amount).filter(line.amount < 0), 0).label("credits"),
        )
        .group_by(line.currency)
        .order_by(line.currency)
    )
    return list((await session.execute(query)).all())
