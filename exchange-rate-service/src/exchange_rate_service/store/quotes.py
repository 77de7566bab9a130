"""Queries on `fx_quotes`: insert, fetch, and the guarded redemption."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from exchange_rate_service.store.tables import fx_quotes

q = fx_quotes


@dataclass(frozen=True)
class QuoteRecord:
    id: uuid.UUID
    user_id: uuid.UUID
    from_currency: str
    to_currency: str
    amount: int
    mid_rate: Decimal
    margin_bps: int
    rate: Decimal
    converted_amount: int
    rate_date: date
    status: str
    created_at: datetime
    expires_at: datetime
    redeemed_at: datetime | None
    redeemed_by: str | None
    redemption_reference: str | None

    @classmethod
    def from_row(cls, row: Row[Any]) -> QuoteRecord:
        return cls(**row._mapping)


_COLUMNS = [q.c[name] for name in QuoteRecord.__dataclass_fields__]


async def insert_quote(session: AsyncSession, **values: Any) -> QuoteRecord:
    row = (await session.execute(q.insert().values(**values).returning(*_COLUMNS))).one()
    return QuoteRecord.from_row(row)


async def fetch_quote(session: AsyncSession, quote_id: uuid.UUID) -> QuoteRecord | None:
    row = (await session.execute(select(*_COLUMNS).where(q.c.id == quote_id))).one_or_none()
    return None if row is None else QuoteRecord.from_row(row)


async def redeem(
    session: AsyncSession,
    *,
    quote_id: uuid.UUID,
    now: datetime,
    allowed_from: Collection[str],
    new_status: str,
    redeemed_by: str,
    reference: str | None,
) -> QuoteRecord | None:
    """Atomic guarded move: only an unexpired quote in `allowed_from`; None when refused."""
    row = (
        await session.execute(
            update(q)
            .where(
                q.c.id == quote_id,
                q.c.status.in_(sorted(allowed_from)),
                q.c.expires_at > now,
            )
            .values(
                status=new_status,
                redeemed_at=now,
                redeemed_by=redeemed_by,
                redemption_reference=reference,
            )
            .returning(*_COLUMNS)
        )
    ).one_or_none()
    return None if row is None else QuoteRecord.from_row(row)
