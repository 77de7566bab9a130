"""The caller's notifications, channel preferences and Web Push subscriptions."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import datetime

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from notification_service.api.pagination import Limit, Offset
from notification_service.api.schemas import NotificationPage, NotificationRead
from notification_service.channels.push import application_server_key
from notification_service.domain import preferences
from notification_service.domain.notifications import list_notifications
from notification_service.settings import Settings
from paygate_common.auth import CurrentPrincipal
from paygate_common.db import SessionDep
from paygate_common.deps import SettingsDep
from paygate_common.errors import business_rule
from paygate_common.idempotency import IdempotencyKeyHeader, idempotent_request

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


class PreferencesRead(BaseModel):
    email: bool
    sms: bool = Field(description="Needs a phone (E.164) on the profile at user-service")
    push: bool = Field(description="Needs at least one push subscription")


class PreferencesUpdate(BaseModel):
    # strict: `0.0` or `"yes"` is not a boolean (lax parsing accepted what the schema refuses)
    model_config = ConfigDict(extra="forbid", strict=True)

    email: bool | None = None
    sms: bool | None = None
    push: bool | None = None


class PushKeys(BaseModel):
    # 65 bytes starting 0x04 (an uncompressed point) and 16 bytes, base64url, padded or not.
    # The patterns document what the domain checks (it answers `invalid_push_subscription`).
    p256dh: str = Field(
        max_length=200,
        description="The browser's uncompressed P-256 public key (65 bytes), base64url",
        json_schema_extra={"pattern": r"^B[A-P][A-Za-z0-9_-]{85}=?$"},
    )
    auth: str = Field(
        max_length=100,
        description="The 16-byte auth secret, base64url",
        json_schema_extra={"pattern": r"^[A-Za-z0-9_-]{22}={0,2}$"},
    )


class PushSubscriptionCreate(BaseModel):
    """What `PushSubscription.toJSON()` gives in the browser (`expirationTime` is ignored)."""

    model_config = ConfigDict(extra="ignore")

    endpoint: str = Field(min_length=10, max_length=2048, pattern=r"^https?://[!-~]+$")
    keys: PushKeys


class PushSubscriptionRead(BaseModel):
    id: uuid.UUID
    endpoint: str
    created_at: datetime


class VapidKeyRead(BaseModel):
    application_server_key: str = Field(
        description="Pass to `pushManager.subscribe({applicationServerKey})` (base64url)"
    )


@router.get(
    "/notifications/preferences",
    response_model=PreferencesRead,
    summary="The caller's channels (defaults: email and push on, SMS off)",
)
async def get_preferences(principal: CurrentPrincipal, session: SessionDep) -> PreferencesRead:
    found = await preferences.preferences_for(session=session, user_id=principal.user_id)
    return PreferencesRead(**asdict(found))


@router.put(
    "/notifications/preferences",
    response_model=PreferencesRead,
    summary="Turn channels on or off; fields left out keep their value",
)
async def put_preferences(
    body: PreferencesUpdate, principal: CurrentPrincipal, session: SessionDep
) -> PreferencesRead:
    changes = {k: v for k, v in body.model_dump().items() if v is not None}
    updated = await preferences.update_preferences(
        session=session, user_id=principal.user_id, changes=changes
    )
    return PreferencesRead(**asdict(updated))


@router.post(
    "/notifications/push-subscriptions",
    response_model=PushSubscriptionRead,
    status_code=status.HTTP_201_CREATED,
    summary="Register a browser's Web Push subscription",
    responses={
        422: business_rule(
            "invalid_push_subscription",
            description="The endpoint's host is malformed, or plain http where https is "
            "required; or `validation_error`",
        )
    },
)
async def post_push_subscription(
    body: PushSubscriptionCreate,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep[Settings],
    request: Request,
    idempotency_key: IdempotencyKeyHeader,
) -> Response:
    async with idempotent_request(
        request, key=idempotency_key, scope=principal.user_id, session=session
    ) as idem:
        if idem.replay is not None:
            return idem.replay
        row = await preferences.subscribe(
            session=session,
            cipher=request.app.state.cipher,
            user_id=principal.user_id,
            endpoint=body.endpoint,
            p256dh=body.keys.p256dh,
            auth=body.keys.auth,
            require_https=settings.environment == "production",
        )
        read = PushSubscriptionRead(id=row.id, endpoint=row.endpoint, created_at=row.created_at)
        return await idem.respond(read, status_code=status.HTTP_201_CREATED)


@router.delete(
    "/notifications/push-subscriptions/{subscription_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove one of the caller's push subscriptions",
)
async def delete_push_subscription(
    subscription_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> Response:
    await preferences.unsubscribe(
        session=session, user_id=principal.user_id, subscription_id=subscription_id
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/notifications/push-subscriptions/vapid-public-key",
    response_model=VapidKeyRead,
    summary="The VAPID public key browsers subscribe with",
)
async def get_vapid_key(_principal: CurrentPrincipal, request: Request) -> VapidKeyRead:
    return VapidKeyRead(application_server_key=application_server_key(request.app.state.vapid))
