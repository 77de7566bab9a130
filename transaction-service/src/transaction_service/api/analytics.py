"""`/internal/analytics`: the suite's payment figures for admin-service (service token only)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from paygate_common.analytics import AnalyticsPeriod, AnalyticsRead
from paygate_common.auth import ServiceCaller
from paygate_common.db import SessionDep
from paygate_common.errors import SERVICE_PROBLEMS, business_rule
from paygate_common.money import Currency
from transaction_service.domain import analytics as domain

router = APIRouter(prefix="/internal", tags=["internal"])


@router.get(
    "/analytics",
    response_model=AnalyticsRead,
    summary="Payments, success rate, volume, fees and refunds per period, provider and currency",
    responses={
        **SERVICE_PROBLEMS,
        422: business_rule(
            "analytics_window_invalid",
            description="A window that ends before it starts, is longer than allowed or "
            "outside the calendar",
        ),
    },
)
async def analytics(
    caller: ServiceCaller,
    session: SessionDep,
    period: AnalyticsPeriod = "day",
    currency: Currency | None = None,
    date_from: Annotated[date | None, Query(alias="from")] = None,
    date_to: Annotated[date | None, Query(alias="to")] = None,
) -> AnalyticsRead:
    return await domain.analytics(
        session=session,
        period=period,
        date_from=date_from,
        date_to=date_to,
        currency=currency,
        today=datetime.now(UTC).date(),
    )
