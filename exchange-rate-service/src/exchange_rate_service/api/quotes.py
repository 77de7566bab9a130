"""`/fx/quotes`: lock a converted price (with `Idempotency-Key`) and read it back."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from exchange_rate_service.api.deps import (
    NowDep,
    PolicyDep,
    QuoteIdPath,
    ReaderDep,
    SettingsDep,
)
from exchange_rate_service.api.schemas import QuoteCreate, QuoteRead
from exchange_rate_service.domain import quotes as domain
from exchange_rate_service.domain.rates import parse_currency
from exchange_rate_service.domain.status import public_status
from paygate_common.auth import CurrentPrincipal
from paygate_common.db import SessionDep
from paygate_common.errors import business_rule, problem
from paygate_common.idempotency import IdempotencyKeyHeader, idempotent_request

router = APIRouter(prefix="/fx/quotes", tags=["quotes"])

# 400, 401, 403 and the Idempotency-Key's 409 and 422 are documented by the service kit
# (`paygate_common.errors.document_problems`) with the suite's shared descriptions.
PROBLEMS: dict[int | str, dict[str, Any]] = {
    404: problem("No such quote, or not the caller's (`quote_not_found`)"),
}


@router.post(
    "",
    status_code=201,
    response_model=QuoteRead,
    summary="Lock a converted price until `expires_at` (mid rate less the margin)",
    responses={
        409: problem("Same Idempotency-Key still in flight"),
        422: business_rule(
            "rate_unavailable",
            "same_currency",
            "amount_too_small",
            description="Unknown currency (`unknown_currency`), no rate for it, the same "
            "currency twice, an amount that converts to zero, or an Idempotency-Key reused "
            "with another body",
        ),
        503: problem("The rates are older than the stale age (`rates_stale`)"),
    },
)
async def create_quote(
    request: Request,
    payload: QuoteCreate,
    principal: CurrentPrincipal,
    session: SessionDep,
    idempotency_key: IdempotencyKeyHeader,
    reader: ReaderDep,
    now: NowDep,
    policy: PolicyDep,
    settings: SettingsDep,
) -> Response:
    source = parse_currency(payload.from_currency, field_name="from")
    target = parse_currency(payload.to_currency, field_name="to")
    async with idempotent_request(
        request,
        key=idempotency_key,
        scope=principal.user_id,
        session=session,
        ttl_seconds=settings.idempotency_ttl_seconds,
    ) as idem:
        if idem.replay is not None:
            return idem.replay
        snapshot = await reader.snapshot(now.date(), latest=True)
        quote = await domain.create_quote(
            session=session,
            snapshot=snapshot,
            user_id=principal.user_id,
            from_currency=source,
            to_currency=target,
            amount=payload.amount,
            now=now,
            policy=policy,
            margin_bps=settings.quote_margin_bps,
            ttl_seconds=settings.quote_ttl_seconds,
            allow_stale=settings.quote_allow_stale_rates,
        )
        return await idem.respond(
            QuoteRead.of(quote, public_status(quote.status, quote.expires_at, now)),
            status_code=201,
            headers={"Location": f"/fx/quotes/{quote.id}"},
        )


@router.get(
    "/{quote_id}",
    response_model=QuoteRead,
    summary="One quote (owner or admin); `status` is open, redeemed or expired",
    responses=PROBLEMS,
)
async def get_quote(
    quote_id: QuoteIdPath, principal: CurrentPrincipal, session: SessionDep, now: NowDep
) -> QuoteRead:
    quote = await domain.quote_for(session=session, quote_id=quote_id, principal=principal)
    return QuoteRead.of(quote, public_status(quote.status, quote.expires_at, now))
