"""Merchant webhooks: endpoint settings, secret rotation, the delivery log and manual retries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from notification_service.domain import webhooks as domain
from notification_service.domain.status import WebhookDeliveryStatus
from notification_service.domain.webhooks import EVENT_TYPE_PATTERN
from notification_service.settings import Settings
from notification_service.store import webhooks as store
from notification_service.store.tables import WebhookEndpoint
from notification_service.wakeups import WEBHOOKS_DUE, wake_after_commit
from notification_service.workers.webhooks import url_policy
from paygate_common.audit import Actor, record_audit
from paygate_common.auth import CurrentPrincipal
from paygate_common.crypto import EnvelopeCipher
from paygate_common.db import SessionDep
from paygate_common.deps import SettingsDep, app_state
from paygate_common.errors import business_rule, problem
from paygate_common.idempotency import IdempotencyKeyHeader, idempotent_request
from paygate_common.pagination import CursorQuery, LimitQuery, Page, decode_cursor, split_page

router = APIRouter(tags=["webhooks"])
# PUT /webhooks/settings and rotate-secret take no Idempotency-Key: their answer carries the
# signing secret, and a stored replay would keep it in plain text. PUT is idempotent anyway;
# a lost rotate answer is recovered by rotating again.


class WebhookSettingsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=10,
        max_length=2048,
        pattern=r"^https?://[!-~]+$",
        examples=["https://merchant.example.com/paygate/webhooks"],
    )
    # the pattern documents what the domain checks (it answers `invalid_enabled_events`)
    enabled_events: (
        list[Annotated[str, Field(json_schema_extra={"pattern": EVENT_TYPE_PATTERN})]] | None
    ) = Field(
        default=None,
        max_length=100,
        description="Event types (`payment.succeeded`) or families (`refund.*`); absent = all",
    )
    enabled: bool | None = None


class WebhookSettingsRead(BaseModel):
    id: uuid.UUID
    url: str
    enabled: bool
    enabled_events: list[str] | None
    disabled_reason: str | None
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    secret: str | None = Field(
        default=None, description="The signing secret: only in the answer to the first PUT"
    )


class RotatedSecretRead(BaseModel):
    secret: str
    previous_secret_expires_at: datetime


class WebhookAttemptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    attempt_no: int
    manual: bool
    response_status: int | None
    response_body: str | None
    error: str | None
    duration_ms: int
    started_at: datetime


class WebhookDeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    webhook_id: str = Field(description="The `webhook-id` header every attempt carries")
    event_id: uuid.UUID
    event_type: str
    status: WebhookDeliveryStatus
    attempts: int
    last_response_status: int | None
    last_response_body: str | None = Field(description="The first bytes of the last answer")
    last_error: str | None
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    succeeded_at: datetime | None
    manual_retry_requested: bool
    created_at: datetime
    attempt_log: list[WebhookAttemptRead] | None = None


CipherDep = Annotated[EnvelopeCipher, Depends(app_state("cipher"))]


def _read(endpoint: WebhookEndpoint, secret: str | None = None) -> WebhookSettingsRead:
    return WebhookSettingsRead(
        id=endpoint.id,
        url=endpoint.url,
        enabled=endpoint.enabled,
        enabled_events=endpoint.enabled_events,
        disabled_reason=endpoint.disabled_reason,
        previous_secret_expires_at=endpoint.previous_expires_at,
        created_at=endpoint.created_at,
        updated_at=endpoint.updated_at,
        secret=secret,
    )


def _delivery(row: Any, attempts: list[Any] | None = None) -> WebhookDeliveryRead:
    read = WebhookDeliveryRead.model_validate(
        {
            **{k: getattr(row, k) for k in WebhookDeliveryRead.model_fields if hasattr(row, k)},
            "webhook_id": domain.message_id(row.id),
        }
    )
    if attempts is not None:
        read.attempt_log = [WebhookAttemptRead.model_validate(a) for a in attempts]
    return read


@router.get(
    "/webhooks/settings",
    response_model=WebhookSettingsRead,
    summary="The caller's webhook endpoint (never its secret)",
    responses={404: problem("`webhook_settings_not_found`")},
)
async def get_webhook_settings(
    principal: CurrentPrincipal, session: SessionDep
) -> WebhookSettingsRead:
    return _read(await domain.get_endpoint(session=session, user_id=principal.user_id))


@router.put(
    "/webhooks/settings",
    response_model=WebhookSettingsRead,
    response_model_exclude_none=False,
    summary="Create or update the caller's webhook endpoint; the first PUT returns the secret",
    responses={
        422: business_rule(
            "invalid_webhook_url",
            description="The URL's host must resolve to public addresses (checked when saved), "
            "or `validation_error`",
        )
    },
)
async def put_webhook_settings(
    body: WebhookSettingsUpdate,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep[Settings],
    cipher: CipherDep,
    request: Request,
) -> WebhookSettingsRead:
    change = await domain.put_endpoint(
        session=session,
        cipher=cipher,
        policy=url_policy(settings),
        user_id=principal.user_id,
        url=body.url,
        enabled_events=body.enabled_events,
        enabled=body.enabled,
        fields_set=set(body.model_fields_set),
    )
    if change.created or change.changed_fields:
        await record_audit(
            session,
            producer=settings.service_name,
            action="webhook_settings.changed",
            entity_type="webhook_endpoint",
            entity_id=change.endpoint.id,
            actor=Actor.of(request, principal),
            details={
                "created": change.created,
                "changed": list(change.changed_fields),
                "url_host": urlsplit(change.endpoint.url).hostname,
                "enabled": change.endpoint.enabled,
            },
        )
    return _read(change.endpoint, change.secret)


@router.post(
    "/webhooks/settings/rotate-secret",
    response_model=RotatedSecretRead,
    status_code=status.HTTP_200_OK,
    summary="A new signing secret; the previous one keeps signing for the overlap (24 h)",
    responses={404: problem("`webhook_settings_not_found`")},
)
async def rotate_webhook_secret(
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep[Settings],
    cipher: CipherDep,
    request: Request,
) -> RotatedSecretRead:
    endpoint, secret = await domain.rotate_secret(
        session=session,
        cipher=cipher,
        user_id=principal.user_id,
        overlap_seconds=settings.webhook_secret_overlap_seconds,
    )
    await record_audit(
        session,
        producer=settings.service_name,
        action="webhook_settings.changed",
        entity_type="webhook_endpoint",
        entity_id=endpoint.id,
        actor=Actor.of(request, principal),
        details={"secret_rotated": True},
    )
    assert endpoint.previous_expires_at is not None
    return RotatedSecretRead(secret=secret, previous_secret_expires_at=endpoint.previous_expires_at)


@router.get(
    "/webhooks",
    response_model=Page[WebhookDeliveryRead],
    summary="The caller's webhook deliveries, newest first (cursor pagination)",
)
async def list_webhook_deliveries(
    principal: CurrentPrincipal,
    session: SessionDep,
    limit: LimitQuery = 20,
    cursor: CursorQuery = None,
    status_filter: Annotated[WebhookDeliveryStatus | None, Query(alias="status")] = None,
) -> Page[WebhookDeliveryRead]:
    rows = await domain.list_deliveries(
        session=session,
        user_id=principal.user_id,
        limit=limit + 1,
        cursor=decode_cursor(cursor) if cursor else None,
        status=status_filter,
    )
    page, next_cursor = split_page(rows, limit)
    return Page(items=[_delivery(r) for r in page], next_cursor=next_cursor)


@router.get(
    "/webhooks/{delivery_id}",
    response_model=WebhookDeliveryRead,
    summary="One delivery with every attempt (status and the first bytes of each answer)",
    responses={404: problem("`webhook_delivery_not_found`")},
)
async def get_webhook_delivery(
    delivery_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> WebhookDeliveryRead:
    delivery = await domain.get_delivery(
        session=session, user_id=principal.user_id, delivery_id=delivery_id
    )
    return _delivery(delivery, list(await store.attempts_of(session, delivery.id)))


@router.post(
    "/webhooks/{delivery_id}/retry",
    response_model=WebhookDeliveryRead,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send that delivery once more, now, whatever its status (same `webhook-id`)",
    responses={404: problem("`webhook_delivery_not_found`")},
)
async def retry_webhook_delivery(
    delivery_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: SessionDep,
    request: Request,
    idempotency_key: IdempotencyKeyHeader,
) -> Response:
    async with idempotent_request(
        request, key=idempotency_key, scope=principal.user_id, session=session
    ) as idem:
        if idem.replay is not None:
            return idem.replay  # a replayed key sends nothing again
        delivery = await domain.request_manual_retry(
            session=session, user_id=principal.user_id, delivery_id=delivery_id
        )
        await wake_after_commit(session, WEBHOOKS_DUE)  # sent once this request commits
        return await idem.respond(_delivery(delivery), status_code=status.HTTP_202_ACCEPTED)
