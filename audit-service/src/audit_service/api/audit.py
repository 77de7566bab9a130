"""Admin-only audit routes: query, an entity's history, verify, export, summary, checkpoints."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from audit_service.api.deps import (
    CursorDep,
    FilterDep,
    InvalidTimeRange,
    SettingsDep,
    SnapshotDep,
)
from audit_service.api.schemas import (
    ArchiveRead,
    AuditRecordPage,
    AuditRecordRead,
    CheckpointRead,
    SummaryRead,
    VerifyRead,
)
from audit_service.domain.export import MEDIA_TYPES, ExportFormat, csv_header, csv_rows, jsonl_rows
from audit_service.domain.verify import verify_chain
from audit_service.store import checkpoints as checkpoint_store
from audit_service.store import records as store
from audit_service.store.reports import summary as summary_report
from paygate_common.auth import AdminPrincipal
from paygate_common.db import SessionDep
from paygate_common.errors import ADMIN_PROBLEMS, InvalidRequest, NotFound, business_rule, problem
from paygate_common.pagination import IsoDateTime

ERRORS: dict[int | str, dict[str, Any]] = {
    **ADMIN_PROBLEMS,
    422: business_rule(
        "invalid_time_range",
        description="A filter or cursor is not valid, or `from` is after `to`",
    ),
}

router = APIRouter(prefix="/admin/audit", tags=["audit"], responses=ERRORS)

LimitQuery = Annotated[int | None, Query(ge=1, le=5000, description="page size")]


def _limit(settings: SettingsDep, limit: int | None) -> int:
    return min(limit or settings.list_default_limit, settings.list_max_limit)


def _page(items: list[dict[str, Any]], next_seq: int | None) -> AuditRecordPage:
    return AuditRecordPage(
        items=[AuditRecordRead.model_validate(i) for i in items],
        next_cursor=store.encode_cursor(next_seq) if next_seq is not None else None,
    )


@router.get(
    "/events", summary="Audit records, newest first, filtered", response_model=AuditRecordPage
)
async def list_events(
    _: AdminPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    flt: FilterDep,
    cursor: CursorDep,
    limit: LimitQuery = None,
) -> AuditRecordPage:
    items, next_seq = await store.list_records(
        session, flt, limit=_limit(settings, limit), before_seq=cursor
    )
    return _page(items, next_seq)


@router.get(
    "/events/{record_id}",
    summary="One audit record",
    response_model=AuditRecordRead,
    responses={404: problem("No such record")},
)
async def get_event(
    _: AdminPrincipal, session: SessionDep, record_id: uuid.UUID
) -> AuditRecordRead:
    record = await store.get_record(session, record_id)
    if record is None:
        raise NotFound("No audit record with this id", code="audit_record_not_found")
    return AuditRecordRead.model_validate(record)


@router.get(
    "/entities/{entity_type}/{entity_id}",
    summary="An entity's full history, oldest first (its records and the events keyed by it)",
    response_model=AuditRecordPage,
)
async def entity_history(
    _: AdminPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    entity_type: str,
    entity_id: str,
    cursor: CursorDep,
    limit: LimitQuery = None,
) -> AuditRecordPage:
    items, next_seq = await store.entity_history(
        session, entity_type, entity_id, limit=_limit(settings, limit), after_seq=cursor
    )
    return _page(items, next_seq)


@router.get(
    "/verify",
    summary="Walk the hash chain and compare its tail with the latest signed checkpoint",
    response_model=VerifyRead,
)
async def verify(_: AdminPrincipal, conn: SnapshotDep, settings: SettingsDep) -> VerifyRead:
    result = await verify_chain(
        conn,
        key=settings.checkpoint_key.get_secret_value().encode(),
        page_size=settings.verify_page_size,
    )
    return VerifyRead.model_validate(result, from_attributes=True)


@router.get(
    "/export",
    summary="Stream the (filtered) trail as JSONL or CSV, in chain order",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}, "text/csv": {}}}},
)
async def export(
    _: AdminPrincipal,
    request: Request,
    settings: SettingsDep,
    flt: FilterDep,
    format: Annotated[ExportFormat, Query(description="jsonl or csv")] = ExportFormat.JSONL,
) -> StreamingResponse:
    engine = request.app.state.engine
    page_size = settings.export_page_size

    async def body() -> AsyncIterator[bytes]:
        # Its own snapshot: the request's unit of work is closed before the body streams.
        async with engine.connect() as conn:
            conn = await conn.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
            async with conn.begin():
                if format is ExportFormat.CSV:
                    yield csv_header()
                async for page in store.iter_records(conn, page_size=page_size, flt=flt):
                    yield csv_rows(page) if format is ExportFormat.CSV else jsonl_rows(page)

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        body(),
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="audit-{stamp}.{format.value}"'},
    )


@router.get(
    "/summary",
    summary="Actions per day, failed sign-ins per account and IP, refunds per actor",
    response_model=SummaryRead,
)
async def summary(
    _: AdminPrincipal,
    session: SessionDep,
    occurred_from: Annotated[IsoDateTime | None, Query(alias="from")] = None,
    occurred_to: Annotated[IsoDateTime | None, Query(alias="to")] = None,
    top: Annotated[int, Query(ge=1, le=500, description="rows per ranking")] = 20,
) -> SummaryRead:
    until = occurred_to or datetime.now(UTC)
    since = occurred_from or until - timedelta(days=30)
    if since.tzinfo is None or until.tzinfo is None:
        raise InvalidRequest("`from` and `to` need a time zone (e.g. 2026-12-01T00:00:00Z)")
    if since > until:
        raise InvalidTimeRange("`from` is after `to`")
    report = await summary_report(session, since, until, limit=top)
    return SummaryRead.model_validate({"since": since, "until": until, **report})


@router.get(
    "/checkpoints/latest",
    summary="The latest signed checkpoint of the chain",
    response_model=CheckpointRead,
    responses={404: problem("No checkpoint written yet")},
)
async def latest_checkpoint(_: AdminPrincipal, session: SessionDep) -> CheckpointRead:
    checkpoint = await checkpoint_store.latest_checkpoint(session)
    if checkpoint is None:
        raise NotFound("No checkpoint has been written yet", code="checkpoint_not_found")
    return CheckpointRead.model_validate(checkpoint)


@router.get(
    "/archives",
    summary="Archived ranges of the trail (signed manifests)",
    response_model=list[ArchiveRead],
)
async def list_archives(_: AdminPrincipal, session: SessionDep) -> list[ArchiveRead]:
    return [ArchiveRead.model_validate(a) for a in await checkpoint_store.archives(session)]
