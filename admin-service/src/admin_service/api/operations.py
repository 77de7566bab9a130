"""`/admin/health`, `/admin/users`, `/admin/analytics`: the suite seen by an operator."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict

from admin_service.api.schemas import HealthRead
from admin_service.domain.analytics import fetch_analytics
from admin_service.domain.health import SuiteHealth
from paygate_common.analytics import AnalyticsPeriod, AnalyticsRead
from paygate_common.auth import AdminPrincipal
from paygate_common.errors import business_rule
from paygate_common.http import ServiceClient, UpstreamStatusError
from paygate_common.money import Currency
from paygate_common.pagination import CursorQuery, LimitQuery

router = APIRouter(prefix="/admin", tags=["operations"])

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid access token (problem+json)"},
    403: {"description": "Not an admin (problem+json `admin_required`)"},
    503: {"description": "The service holding that data is unavailable (problem+json)"},
}


@router.get(
    "/health",
    response_model=HealthRead,
    summary="Every service's readiness, consumer lag, dead letters, outbox backlog",
    responses=PROBLEMS,
)
async def suite_health(request: Request, principal: AdminPrincipal) -> HealthRead:
    health: SuiteHealth = request.app.state.suite_health
    return HealthRead(**await health.snapshot())


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Annotated[str, Query(pattern="^(customer|merchant|admin)$")] | None = None
    disabled: bool | None = None


@router.get(
    "/users",
    summary="Search users by email, role and status (from user-service)",
    responses=PROBLEMS,
)
async def search_users(
    request: Request,
    principal: AdminPrincipal,
    # the constraint user-service's search states: no control characters (it refuses them)
    q: Annotated[
        str | None,
        Query(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$", description="Part of the email"),
    ] = None,
    role: Annotated[str | None, Query(pattern="^(customer|merchant|admin)$")] = None,
    disabled: bool | None = None,
    limit: LimitQuery = 20,
    cursor: CursorQuery = None,
) -> Any:
    users: ServiceClient = request.app.state.users
    params = {
        k: v
        for k, v in {
            "q": q,
            "role": role,
            "disabled": disabled,
            "limit": limit,
            "cursor": cursor,
        }.items()
        if v is not None
    }
    response = await users.request("GET", "/internal/users", params=params)
    return _passthrough(response)


@router.patch(
    "/users/{user_id}",
    summary="Change a user's role or disable them",
    responses={**PROBLEMS, 404: {"description": "No such user"}},
)
async def update_user(
    request: Request, user_id: uuid.UUID, body: UserUpdate, principal: AdminPrincipal
) -> Any:
    users: ServiceClient = request.app.state.users
    # user-service audits the change as this operator (X-Actor-Id, trusted with a service token)
    response = await users.request(
        "PATCH",
        f"/internal/users/{user_id}",
        json=body.model_dump(exclude_none=True),
        headers=operator_headers(request, principal.user_id),
    )
    return _passthrough(response)


@router.get(
    "/analytics",
    response_model=AnalyticsRead,
    summary="Volume, counts, success rate and refunds by day, provider and currency",
    responses={
        **PROBLEMS,
        422: business_rule(
            "analytics_window_invalid",
            description="A window that ends before it starts, is longer than allowed or "
            "outside the calendar",
        ),
    },
)
async def analytics(
    request: Request,
    principal: AdminPrincipal,
    period: AnalyticsPeriod = "day",
    currency: Currency | None = None,
    date_from: Annotated[date | None, Query(alias="from")] = None,
    date_to: Annotated[date | None, Query(alias="to")] = None,
) -> Any:
    try:
        return await fetch_analytics(
            request.app.state.transactions,
            period=period,
            currency=currency,
            date_from=date_from,
            date_to=date_to,
        )
    except UpstreamStatusError as exc:
        if exc.upstream_status >= 500:
            raise
        return _passthrough(exc.response)  # the ledger's own 422 says what was wrong


def operator_headers(request: Request, operator_id: uuid.UUID) -> dict[str, str]:
    """Who acts, for the owner's audit trail: the operator and the browser's address."""
    headers = {"X-Actor-Id": str(operator_id)}
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded:
        headers["X-Forwarded-For"] = forwarded
    return headers


def _passthrough(response: Any) -> Any:
    from starlette.responses import Response

    return Response(
        content=response.content,
        status_code=response.status_code,
        media_type=response.headers.get("content-type", "application/json"),
    )
