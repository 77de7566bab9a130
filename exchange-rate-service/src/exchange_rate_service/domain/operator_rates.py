"""Operator-set rates for currencies the ECB does not publish (BDT, PKR, …), with who and when, audited."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from exchange_rate_service.domain.errors import CurrencyPublishedByEcb
from exchange_rate_service.domain.rates import EUR, EurRate
from exchange_rate_service.store import rates as store
from paygate_common.audit import Actor, record_audit
from paygate_common.auth import Principal

AUDIT_ACTION = "fx_rate.set"
# A currency the ECB published within this window is the ECB's: an operator cannot shadow it.
ECB_OWNERSHIP_WINDOW = timedelta(days=30)


async def set_operator_rate(
    *,
    session: AsyncSession,
    currency: str,
    rate_per_eur: Decimal,
    principal: Principal,
    request: Request,
    now: datetime,
    producer: str,
) -> tuple[EurRate, EurRate | None]:
    """Store the rate in force from today and emit `fx_rate.set`; returns (new, previous)."""
    today = now.date()
    latest = await store.latest_ecb_date(session, today)
    if currency == EUR or (
        latest is not None
        and currency in await store.ecb_currencies_since(session, latest - ECB_OWNERSHIP_WINDOW)
    ):
        raise CurrencyPublishedByEcb(
            f"{currency} has an ECB reference rate; operator rates are for currencies it lacks"
        )
    previous = await store.operator_rate_in_force(session, currency, today)
    rate = await store.set_operator_rate(
        session,
        currency=currency,
        rate_date=today,
        rate_per_eur=rate_per_eur,
        set_by=principal.user_id,
        set_at=now,
    )
    await record_audit(
        session,
        producer=producer,
        action=AUDIT_ACTION,
        entity_type="fx_rate",
        entity_id=currency,
        actor=Actor.of(request, principal),
        details={
            "rate_per_eur": str(rate_per_eur),
            "previous_rate_per_eur": str(previous.rate_per_eur) if previous else None,
            "rate_date": today.isoformat(),
        },
    )
    return rate, previous
