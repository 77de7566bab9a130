"""`/internal/analytics`: the suite's payment figures for admin-service (service token only)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from paygate_common.analytics import ANALYTICS_WINDOW_INVALID, AnalyticsQueryDep, AnalyticsRead
from paygate_common.auth import ServiceCaller
from paygate_common.db import SessionDep
from paygate_common.errors import SERVICE_PROBLEMS
from transaction_service.domain import analytics as domain

router = APIRouter(prefix="/internal", tags=["internal"])


@router.get(
    "/analytics",
    response_model=AnalyticsRead,
    summary="Payments, success rate, volume, fees and refunds per period, provider and currency",
    responses={**SERVICE_PROBLEMS, 422: ANALYTICS_WINDOW_INVALID},
)
async def analytics(
    caller: ServiceCaller, session: SessionDep, query: AnalyticsQueryDep
) -> AnalyticsRead:
    return await domain.analytics(
        session=session,
        period=query.period,
        date_from=query.date_from,
        date_to=query.date_to,
        currency=query.currency,
        today=datetime.now(UTC).date(),
    )
