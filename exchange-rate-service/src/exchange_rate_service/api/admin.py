"""`/admin/rates`: feed status, operator-set rates (audited) and a refresh on demand; admin only."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Path, Request

from exchange_rate_service.api.deps import NowDep, PolicyDep, ReaderDep
from exchange_rate_service.api.schemas import (
    CURRENCY_SCHEMA,
    AdminRatesRead,
    FeedRead,
    OperatorRateRead,
    OperatorRateUpdate,
)
from exchange_rate_service.domain import operator_rates
from exchange_rate_service.domain.errors import RateFeedUnavailable
from exchange_rate_service.domain.rates import EurRate, parse_currency
from exchange_rate_service.store import rates as store
from exchange_rate_service.workers.refresh import RateRefresher
from paygate_common.auth import AdminPrincipal
from paygate_common.db import SessionDep, unit_of_work
from paygate_common.errors import ADMIN_PROBLEMS, business_rule, problem

router = APIRouter(prefix="/admin/rates", tags=["admin"])

PROBLEMS = ADMIN_PROBLEMS


@router.get(
    "",
    response_model=AdminRatesRead,
    summary="Feed status (last attempt, last success, error) and the operator rates in force",
    responses=PROBLEMS,
)
async def rates_status(
    _: AdminPrincipal, session: SessionDep, reader: ReaderDep, now: NowDep, policy: PolicyDep
) -> AdminRatesRead:
    latest = await store.latest_ecb_date(session, now.date())
    stale = latest is None or policy.is_stale(EurRate("eur", Decimal(1), latest, "ecb"), now=now)
    feeds = [
        FeedRead.of(status, stale=stale)
        for name in (store.DAILY_FEED, store.BUNDLED_HISTORY)
        if (status := await store.feed_status(session, name)) is not None
    ]
    snapshot = await reader.snapshot(now.date(), latest=True)
    operator = [
        OperatorRateRead.of(r)
        for r in sorted(snapshot.rates.values(), key=lambda r: r.currency)
        if r.source == "operator"
    ]
    return AdminRatesRead(feeds=feeds, latest_ecb_date=latest, operator_rates=operator)


@router.put(
    "/{currency}",
    response_model=OperatorRateRead,
    summary="Set the rate of a currency the ECB does not publish (e.g. BDT), from today on",
    responses={
        **PROBLEMS,
        422: business_rule(
            "currency_published_by_ecb",
            description="`unknown_currency`, a currency the ECB publishes, or a bad rate",
        ),
    },
)
async def put_operator_rate(
    request: Request,
    currency: Annotated[
        str, Path(max_length=8, description="e.g. `bdt`", json_schema_extra=CURRENCY_SCHEMA)
    ],
    payload: OperatorRateUpdate,
    principal: AdminPrincipal,
    reader: ReaderDep,
    now: NowDep,
) -> OperatorRateRead:
    code = parse_currency(currency)
    # The unit of work is opened here rather than as a dependency: the cache may only be
    # invalidated after the new rate has committed.
    async with unit_of_work(request.app.state.sessionmaker) as session:
        rate, previous = await operator_rates.set_operator_rate(
            session=session,
            currency=code,
            rate_per_eur=Decimal(payload.rate_per_eur),
            principal=principal,
            request=request,
            now=now,
            producer=request.app.state.settings.service_name,
        )
    await reader.invalidate()
    return OperatorRateRead.of(rate, previous)


@router.post(
    "/refresh",
    response_model=FeedRead,
    summary="Fetch the ECB feed now (the schedule continues as before)",
    responses={**PROBLEMS, 502: problem("The feed failed (`rate_feed_unavailable`)")},
)
async def refresh_now(
    request: Request, _: AdminPrincipal, now: NowDep, policy: PolicyDep
) -> FeedRead:
    refresher: RateRefresher = request.app.state.rate_refresher
    result = await refresher.refresh_once()
    if not result.ok:
        raise RateFeedUnavailable(
            f"{result.error}; still serving the rates of "
            f"{result.latest_rate_date.isoformat() if result.latest_rate_date else 'no day'}"
        )
    async with unit_of_work(request.app.state.sessionmaker) as session:
        status = await store.feed_status(session, store.DAILY_FEED)
    assert status is not None
    latest = result.latest_rate_date
    stale = latest is None or policy.is_stale(EurRate("eur", Decimal(1), latest, "ecb"), now=now)
    return FeedRead.of(status, stale=stale)
