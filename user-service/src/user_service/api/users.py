"""The caller's own profile and sign-in sessions."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from paygate_common.audit import Actor
from paygate_common.auth import CurrentPrincipal
from paygate_common.db import SessionDep
from paygate_common.errors import problem
from user_service.api.deps import SessionPrincipal, SettingsDep
from user_service.api.schemas import ProfileUpdate, SessionPage, SessionRead, UserRead
from user_service.domain import accounts, sessions

router = APIRouter(
    tags=["users"],
    responses={401: problem("`token_missing`, `token_invalid` or `token_expired`")},
)


@router.get("/users/me", response_model=UserRead, summary="The caller's profile")
async def me(principal: CurrentPrincipal, session: SessionDep) -> UserRead:
    user = await accounts.get_user(session=session, user_id=principal.user_id)
    return UserRead.model_validate(user)


@router.patch(
    "/users/me",
    response_model=UserRead,
    summary="Change the caller's name or phone (E.164); unknown fields are refused",
    responses={422: problem("`validation_error`")},
)
async def update_me(
    body: ProfileUpdate, request: Request, principal: CurrentPrincipal, session: SessionDep
) -> UserRead:
    user = await accounts.update_profile(
        session=session,
        user_id=principal.user_id,
        changes=body.changes(),
        actor=Actor.of(request, principal),
    )
    return UserRead.model_validate(user)


@router.get(
    "/users/me/sessions",
    response_model=SessionPage,
    summary="The caller's live sign-in sessions, newest first",
    responses={403: problem("`session_required` (called with an API key)")},
)
async def list_my_sessions(
    principal: SessionPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    limit: Annotated[int | None, Query(ge=1, le=100)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> SessionPage:
    page = await sessions.list_sessions(
        session=session,
        user_id=principal.user_id,
        limit=limit or settings.list_default_limit,
        cursor=cursor,
    )
    return SessionPage(
        items=[SessionRead.model_validate(s) for s in page.items], next_cursor=page.next_cursor
    )


@router.delete(
    "/users/me/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke one of the caller's sessions (its refresh token stops working at once)",
    responses={
        403: problem("`session_required` (called with an API key)"),
        404: problem("`session_not_found`"),
    },
)
async def revoke_my_session(
    session_id: uuid.UUID, request: Request, principal: SessionPrincipal, session: SessionDep
) -> Response:
    await sessions.revoke_session(
        session=session,
        user_id=principal.user_id,
        session_id=session_id,
        actor=Actor.of(request, principal),
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
