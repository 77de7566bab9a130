"""Locked FX quotes: priced from a snapshot with the margin, honoured until `expires_at`, redeemed once."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from exchange_rate_service.domain.errors import (
    AmountTooSmall,
    QuoteExpired,
    QuoteNotFound,
    QuoteRedeemed,
    RatesStale,
    SameCurrency,
)
from exchange_rate_service.domain.rates import Snapshot, StalenessPolicy, convert
from exchange_rate_service.domain.status import QuoteStatus, allowed_from
from exchange_rate_service.store import quotes as store
from exchange_rate_service.store.quotes import QuoteRecord
from paygate_common.auth import Principal, owned_or_raise

log = logging.getLogger("exchange_rate_service.quotes")


async def create_quote(
    *,
    session: AsyncSession,
    snapshot: Snapshot,
    user_id: uuid.UUID,
    from_currency: str,
    to_currency: str,
    amount: int,
    now: datetime,
    policy: StalenessPolicy,
    margin_bps: int,
    ttl_seconds: int,
    allow_stale: bool,
) -> QuoteRecord:
    """Price `amount` at the current rate less the margin and store the quote, open until expiry."""
    if from_currency == to_currency:
        raise SameCurrency("from and to must differ")
    conversion = convert(
        snapshot,
        from_currency=from_currency,
        to_currency=to_currency,
        amount=amount,
        now=now,
        policy=policy,
        margin_bps=margin_bps,
    )
    if conversion.stale and not allow_stale:
        # A price held for the customer must not rest on rates nobody has refreshed for days.
        raise RatesStale(
            f"The newest {from_currency}/{to_currency} rates are from "
            f"{conversion.date.isoformat()}; no quote until they are refreshed",
            headers={"Retry-After": "60"},
        )
    if conversion.converted_amount <= 0:
        raise AmountTooSmall(
            f"{amount} {from_currency} is less than one minor unit of {to_currency}"
        )
    quote = await store.insert_quote(
        session,
        id=uuid.uuid4(),
        user_id=user_id,
        from_currency=from_currency,
        to_currency=to_currency,
        amount=amount,
        mid_rate=conversion.mid_rate,
        margin_bps=margin_bps,
        rate=conversion.rate,
        converted_amount=conversion.converted_amount,
        rate_date=conversion.date,
        status=QuoteStatus.OPEN.value,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds),
    )
    log.info(
        "fx quote %s: %d %s -> %d %s at %s, expires %s",
        quote.id,
        amount,
        from_currency,
        quote.converted_amount,
        to_currency,
        quote.rate,
        quote.expires_at.isoformat(),
    )
    return quote


async def quote_for(
    *, session: AsyncSession, quote_id: uuid.UUID, principal: Principal
) -> QuoteRecord:
    """The quote if the caller owns it or is an admin; otherwise `QuoteNotFound` (never 403)."""
    quote = await store.fetch_quote(session, quote_id)
    return owned_or_raise(quote, principal, QuoteNotFound(f"No quote {quote_id}"))


async def redeem_quote(
    *,
    session: AsyncSession,
    quote_id: uuid.UUID,
    now: datetime,
    caller: str,
    reference: str | None,
) -> QuoteRecord:
    """Redeem an open, unexpired quote exactly once (a guarded UPDATE decides concurrent calls).

    A retry by the same caller with the same `reference` gets the redeemed quote back (200),
    so a payment that timed out after redeeming can safely ask again.
    """
    target = QuoteStatus.REDEEMED
    redeemed = await store.redeem(
        session,
        quote_id=quote_id,
        now=now,
        allowed_from={s.value for s in allowed_from(target)},
        new_status=target.value,
        redeemed_by=caller,
        reference=reference,
    )
    if redeemed is not None:
        log.info("fx quote %s redeemed by %s (reference %s)", quote_id, caller, reference)
        return redeemed
    quote = await store.fetch_quote(session, quote_id)
    if quote is None:
        raise QuoteNotFound(f"No quote {quote_id}")
    if quote.status == QuoteStatus.REDEEMED:
        if (
            reference is not None
            and quote.redemption_reference == reference
            and quote.redeemed_by == caller
        ):
            return quote
        raise QuoteRedeemed(f"Quote {quote_id} was redeemed at {quote.redeemed_at}")
    raise QuoteExpired(f"Quote {quote_id} expired at {quote.expires_at.isoformat()}")
