"""Operator endpoints: list dead-lettered notifications and replay one."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, status

from notification_service.api.pagination import Limit, Offset
from notification_service.api.schemas import DeadLetterPage, DeadLetterRead
from notification_service.domain import notifications as domain
from paygate_common.auth import AdminPrincipal
from paygate_common.db import SessionDep

router = APIRouter(prefix="/admin/notifications", tags=["admin"])


@router.get(
    "/dead-letters",
    response_model=DeadLetterPage,
    summary="Dead-lettered notifications with their last error and attempt count",
)
async def get_dead_letters(
    _admin: AdminPrincipal, session: SessionDep, limit: Limit = 50, offset: Offset = 0
) -> DeadLetterPage:
    rows, total = await domain.list_dead_letters(session=session, limit=limit, offset=offset)
    return DeadLetterPage(
        items=[DeadLetterRead.model_validate(r) for r in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.post(
    "/dead-letters/{notification_id}/replay",
    response_model=DeadLetterRead,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Queue a dead-lettered notification again (409 `not_dead_lettered` otherwise)",
)
async def replay_dead_letter(
    notification_id: uuid.UUID, _admin: AdminPrincipal, session: SessionDep, request: Request
) -> DeadLetterRead:
    replayed = await domain.replay_dead_letter(session=session, notification_id=notification_id)
    # Delivery starts once this request's transaction committed; the wake only saves a poll.
    sender = getattr(request.app.state, "sender", None)
    if sender is not None:
        sender.wake_soon()
    return DeadLetterRead.model_validate(replayed)
