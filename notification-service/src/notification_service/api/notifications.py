"""`GET /notifications`: the caller's notifications, newest first."""

from __future__ import annotations

from fastapi import APIRouter

from notification_service.api.pagination import Limit, Offset
from notification_service.api.schemas import NotificationPage, NotificationRead
from notification_service.domain.notifications import list_notifications
from paygate_common.auth import CurrentPrincipal
from paygate_common.db import SessionDep

router = APIRouter(tags=["notifications"])


@router.get(
    "/notifications",
    response_model=NotificationPage,
    summary="The caller's notifications, newest first",
)
async def get_my_notifications(
    principal: CurrentPrincipal, session: SessionDep, limit: Limit = 20, offset: Offset = 0
) -> NotificationPage:
    rows, total = await list_notifications(
        session=session, user_id=principal.user_id, limit=limit, offset=offset
    )
    items = [
        NotificationRead.model_validate(row).model_copy(update={"replayed": row.replay_count > 0})
        for row in rows
    ]
    return NotificationPage(items=items, total=total, limit=limit, offset=offset)
