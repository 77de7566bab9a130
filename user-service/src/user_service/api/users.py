"""The caller's own profile."""

from __future__ import annotations

from fastapi import APIRouter

from paygate_common.auth import CurrentPrincipal
from paygate_common.db import SessionDep
from user_service.api.schemas import UserRead, problem
from user_service.domain import accounts

router = APIRouter(
    tags=["users"],
    responses={401: problem("`token_missing`, `token_invalid` or `token_expired`")},
)


@router.get("/users/me", response_model=UserRead, summary="The caller's profile")
async def me(principal: CurrentPrincipal, session: SessionDep) -> UserRead:
    user = await accounts.get_user(session=session, user_id=principal.user_id)
    return UserRead.model_validate(user)
