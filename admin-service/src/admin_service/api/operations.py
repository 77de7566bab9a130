"""`/admin/health`, `/admin/users`, `/admin/analytics`: the suite seen by an operator."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from admin_service.api.schemas import HealthRead
from admin_service.domain.analytics import fetch_analytics
from admin_service.domain.health import SuiteHealth
from paygate_common.analytics import ANALYTICS_WINDOW_INVALID, AnalyticsQueryDep, AnalyticsRead
from paygate_common.auth import AdminPrincipal
from paygate_common.deps import app_state
from paygate_common.errors import ADMIN_PROBLEMS, problem
from paygate_common.http import AnswerT, ServiceClient, UpstreamStatusError
from paygate_common.internal.users import (
    USER_PATH,
    USERS_PATH,
    AdminUserPage,
    AdminUserRead,
    AdminUserSearchDep,
    AdminUserUpdate,
)

router = APIRouter(prefix="/admin", tags=["operations"])

UsersClient = Annotated[ServiceClient, Depends(app_state("users"))]

PROBLEMS: dict[int | str, dict[str, Any]] = {
    **ADMIN_PROBLEMS,
    503: problem("The service holding that data is unavailable (problem+json)"),
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


@router.get(
    "/users",
    response_model=AdminUserPage,
    summary="Search users by email, role and status (from user-service)",
    responses=PROBLEMS,
)
async def search_users(
    principal: AdminPrincipal, users: UsersClient, query: AdminUserSearchDep
) -> AdminUserPage | Response:
    return await relaying_refusals(
        users.call_as(AdminUserPage, "GET", USERS_PATH, params=query.params())
    )


@router.patch(
    "/users/{user_id}",
    response_model=AdminUserRead,
    summary="Change a user's role or disable them",
    responses={**PROBLEMS, 404: problem("No such user")},
)
async def update_user(
    request: Request,
    user_id: uuid.UUID,
    body: AdminUserUpdate,
    principal: AdminPrincipal,
    users: UsersClient,
) -> AdminUserRead | Response:
    # user-service audits the change as this operator (X-Actor-Id, trusted with a service token)
    return await relaying_refusals(
        users.call_as(
            AdminUserRead,
            "PATCH",
            USER_PATH.format(user_id=user_id),
            json=body.model_dump(mode="json", exclude_none=True),
            headers=operator_headers(request, principal.user_id),
        )
    )


@router.get(
    "/analytics",
    response_model=AnalyticsRead,
    summary="Volume, counts, success rate and refunds by day, provider and currency",
    responses={**PROBLEMS, 422: ANALYTICS_WINDOW_INVALID},
)
async def analytics(
    request: Request, principal: AdminPrincipal, query: AnalyticsQueryDep
) -> AnalyticsRead | Response:
    # the ledger's own 422 says what was wrong with the window
    return await relaying_refusals(fetch_analytics(request.app.state.transactions, query))


def operator_headers(request: Request, operator_id: uuid.UUID) -> dict[str, str]:
    """Who acts, for the owner's audit trail: the operator and the browser's address."""
    headers = {"X-Actor-Id": str(operator_id)}
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded:
        headers["X-Forwarded-For"] = forwarded
    return headers


async def relaying_refusals(answer: Awaitable[AnswerT]) -> AnswerT | Response:
    """The typed answer; a 4xx of the owner (404 `user_not_found`, 422 `invalid_cursor`, ...) is
    relayed as it said it, while its 5xx or an outage stays this service's 502/503 problem."""
    try:
        return await answer
    except UpstreamStatusError as exc:
        if exc.upstream_status >= 500:
            raise
        return passthrough(exc.response)


def passthrough(response: httpx.Response) -> Response:
    """The owner's own problem answer (its status, code and detail), relayed unchanged."""
    return Response(
        content=response.content,
        status_code=response.status_code,
        media_type=response.headers.get("content-type", "application/json"),
    )
