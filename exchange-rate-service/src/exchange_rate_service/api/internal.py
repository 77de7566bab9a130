"""`/internal/fx/quotes/{id}/redeem`: another service (with a service token) spends a quote once."""

from __future__ import annotations

from fastapi import APIRouter, Body

from exchange_rate_service.api.deps import NowDep, QuoteIdPath
from exchange_rate_service.api.schemas import QuoteRead, QuoteRedeem
from exchange_rate_service.domain import quotes as domain
from exchange_rate_service.domain.status import public_status
from paygate_common.auth import ServiceCaller
from paygate_common.db import SessionDep
from paygate_common.errors import SERVICE_PROBLEMS, business_rule, problem

router = APIRouter(prefix="/internal/fx/quotes", tags=["internal"])


@router.post(
    "/{quote_id}/redeem",
    response_model=QuoteRead,
    summary="Redeem an open quote before it expires (once)",
    responses={
        **SERVICE_PROBLEMS,
        404: problem("No such quote (`quote_not_found`)"),
        409: problem("Already redeemed (`quote_redeemed`)"),
        410: business_rule("quote_expired", description="Past `expires_at`"),
    },
)
async def redeem_quote(
    quote_id: QuoteIdPath,
    caller: ServiceCaller,
    session: SessionDep,
    now: NowDep,
    payload: QuoteRedeem | None = Body(default=None),
) -> QuoteRead:
    quote = await domain.redeem_quote(
        session=session,
        quote_id=quote_id,
        now=now,
        caller=caller,
        reference=payload.reference if payload else None,
    )
    return QuoteRead.of(quote, public_status(quote.status, quote.expires_at, now))
