"""The caller's API keys: create (the key is shown once), list (never the key), revoke."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from paygate_common.audit import Actor
from paygate_common.auth import key_environment
from paygate_common.db import SessionDep
from paygate_common.errors import problem
from user_service.api.deps import ApiKeyHasherDep, SessionPrincipal, SettingsDep
from user_service.api.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyPage, ApiKeyRead
from user_service.domain import api_keys
from user_service.store.tables import ApiKey

router = APIRouter(
    prefix="/api-keys",
    tags=["api keys"],
    responses={
        401: problem("`token_missing`, `token_invalid` or `token_expired`"),
        403: problem("`session_required`: keys are managed after a password sign-in"),
    },
)


def _read(row: ApiKey) -> dict[str, object]:
    return {
        "id": row.id,
        "name": row.name,
        "prefix": api_keys.display_prefix(row),
        "scopes": row.scopes,
        "created_at": row.created_at,
        "last_used_at": row.last_used_at,
    }


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    summary="Create an API key; the response is the only time the key is shown",
    responses={409: problem("`too_many_api_keys`"), 422: problem("`validation_error`")},
)
async def create(
    body: ApiKeyCreate,
    request: Request,
    principal: SessionPrincipal,
    session: SessionDep,
    hasher: ApiKeyHasherDep,
    settings: SettingsDep,
) -> ApiKeyCreated:
    issued = await api_keys.create_api_key(
        session=session,
        hasher=hasher,
        user_id=principal.user_id,
        name=body.name,
        scopes=body.scopes,
        environment=key_environment(settings.environment),
        max_keys=settings.api_keys_per_user,
        actor=Actor.of(request, principal),
    )
    return ApiKeyCreated(**_read(issued.row), key=issued.key)


@router.get("", response_model=ApiKeyPage, summary="The caller's live API keys, newest first")
async def list_keys(
    principal: SessionPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    limit: Annotated[int | None, Query(ge=1, le=100)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> ApiKeyPage:
    page = await api_keys.list_api_keys(
        session=session,
        user_id=principal.user_id,
        limit=limit or settings.list_default_limit,
        cursor=cursor,
    )
    return ApiKeyPage(
        items=[ApiKeyRead(**_read(row)) for row in page.items],
        next_cursor=page.next_cursor,
    )


@router.delete(
    "/{api_key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an API key; the gateway refuses it within 5 seconds",
    responses={404: problem("`api_key_not_found`")},
)
async def revoke(
    api_key_id: uuid.UUID, request: Request, principal: SessionPrincipal, session: SessionDep
) -> Response:
    await api_keys.revoke_api_key(
        session=session,
        user_id=principal.user_id,
        key_id=api_key_id,
        actor=Actor.of(request, principal),
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
