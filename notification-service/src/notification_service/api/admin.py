"""Operator endpoints: dead-lettered notifications and their replay; message templates."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import datetime

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from notification_service.api.pagination import Limit, Offset
from notification_service.domain import notifications as domain
from notification_service.domain import templates
from notification_service.wakeups import NOTIFICATIONS_DUE, wake_after_commit
from paygate_common.audit import Actor, record_audit
from paygate_common.auth import AdminPrincipal
from paygate_common.db import SessionDep
from paygate_common.errors import problem
from paygate_common.idempotency import IdempotencyKeyHeader, idempotent_request
from paygate_common.internal.notifications import DeadLetterPage, DeadLetterRead

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
    notification_id: uuid.UUID, _admin: AdminPrincipal, session: SessionDep
) -> DeadLetterRead:
    replayed = await domain.replay_dead_letter(session=session, notification_id=notification_id)
    # Every sender (on any replica) wakes once this request's transaction has committed.
    await wake_after_commit(session, NOTIFICATIONS_DUE)
    return DeadLetterRead.model_validate(replayed)


# -- message templates -----------------------------------------------------------------------


class TemplateRead(BaseModel):
    event_type: str
    channel: str
    source: str = Field(description="`builtin`, or `custom` for an operator's saved version")
    version: int
    parts: dict[str, str]
    variables: list[str]


class TemplatePage(BaseModel):
    items: list[TemplateRead]


class TemplateUpdate(BaseModel):
    """The channel's parts: email `subject, text, html`; sms `text`; push `title, text`."""

    model_config = ConfigDict(extra="forbid")

    parts: dict[str, str] = Field(
        examples=[{"text": "paygate: {{ amount }} received, thank you {{ name }}!"}]
    )


class TemplateVersionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: int
    parts: dict[str, str]
    created_by: uuid.UUID | None
    created_at: datetime


class TemplateHistory(BaseModel):
    items: list[TemplateVersionRead]


@router.get(
    "/templates",
    response_model=TemplatePage,
    summary="Every (event type, channel) template: the live source and the variables it may use",
)
async def get_templates(_admin: AdminPrincipal, session: SessionDep) -> TemplatePage:
    views = await templates.list_templates(session=session)
    return TemplatePage(
        items=[TemplateRead(**{**asdict(v), "variables": list(v.variables)}) for v in views]
    )


@router.put(
    "/templates/{event_type}/{channel}",
    response_model=TemplateVersionRead,
    summary="Save a new version after validating it (syntax, known variables, a test render)",
    responses={
        404: problem("`template_not_found`"),
        422: problem("`invalid_template` with every problem found"),
    },
)
async def put_template(
    event_type: str,
    channel: str,
    body: TemplateUpdate,
    admin: AdminPrincipal,
    session: SessionDep,
    request: Request,
    idempotency_key: IdempotencyKeyHeader,
) -> Response:
    async with idempotent_request(
        request, key=idempotency_key, scope=admin.user_id, session=session
    ) as idem:
        if idem.replay is not None:
            return idem.replay  # the same save is not a second version
        saved = await templates.save_template(
            session=session,
            event_type=event_type,
            channel=channel,
            parts=body.parts,
            actor_id=admin.user_id,
        )
        await record_audit(
            session,
            producer=request.app.state.settings.service_name,
            action="template.changed",
            entity_type="message_template",
            entity_id=f"{event_type}/{channel}",
            actor=Actor.of(request, admin),
            details={"version": saved.version, "parts": sorted(body.parts)},
        )
        return await idem.respond(TemplateVersionRead.model_validate(saved), status_code=200)


@router.get(
    "/templates/{event_type}/{channel}/versions",
    response_model=TemplateHistory,
    summary="Every saved version, newest first",
    responses={404: problem("`template_not_found`")},
)
async def get_template_versions(
    event_type: str, channel: str, _admin: AdminPrincipal, session: SessionDep
) -> TemplateHistory:
    rows = await templates.template_history(session=session, event_type=event_type, channel=channel)
    return TemplateHistory(items=[TemplateVersionRead.model_validate(r) for r in rows])
