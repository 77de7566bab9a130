"""Dependencies of the audit API: a read-only snapshot connection and the list filters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncConnection

from audit_service.settings import Settings
from audit_service.store.records import RecordFilter, decode_cursor
from paygate_common.deps import SettingsDep as SharedSettingsDep
from paygate_common.errors import InvalidRequest
from paygate_common.pagination import IsoDateTime
from paygate_common.text import SINGLE_LINE_PATTERN

SettingsDep = SharedSettingsDep[Settings]


async def snapshot_connection(request: Request) -> AsyncIterator[AsyncConnection]:
    """One REPEATABLE READ, read-only transaction: a walk or export sees one consistent chain."""
    async with request.app.state.engine.connect() as conn:
        conn = await conn.execution_options(
            isolation_level="REPEATABLE READ", postgresql_readonly=True
        )
        async with conn.begin():
            yield conn


SnapshotDep = Annotated[AsyncConnection, Depends(snapshot_connection, scope="function")]


class InvalidTimeRange(InvalidRequest):
    """`from` after `to`: a rule between two parameters, which JSON Schema cannot state."""

    code, title = "invalid_time_range", "The time range is empty"


# Filters are compared with stored text: a control character (NUL above all, which PostgreSQL
# cannot hold in text) is refused as a 422 before it reaches a query.
ONE_LINE = SINGLE_LINE_PATTERN


def record_filter(
    actor: Annotated[
        str | None, Query(max_length=200, pattern=ONE_LINE, description="actor id (a user id)")
    ] = None,
    action: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=ONE_LINE,
            description="`payment.succeeded`, or `payment.*` for a family",
        ),
    ] = None,
    entity_type: Annotated[str | None, Query(max_length=100, pattern=ONE_LINE)] = None,
    entity_id: Annotated[str | None, Query(max_length=200, pattern=ONE_LINE)] = None,
    request_id: Annotated[
        str | None,
        Query(max_length=200, pattern=ONE_LINE, description="the correlation id of one API call"),
    ] = None,
    occurred_from: Annotated[
        IsoDateTime | None, Query(alias="from", description="occurred at or after (ISO 8601)")
    ] = None,
    occurred_to: Annotated[
        IsoDateTime | None, Query(alias="to", description="occurred before (ISO 8601)")
    ] = None,
) -> RecordFilter:
    for name, value in (("from", occurred_from), ("to", occurred_to)):
        if value is not None and value.tzinfo is None:
            raise InvalidRequest(f"`{name}` needs a time zone (e.g. 2026-12-01T00:00:00Z)")
    if occurred_from and occurred_to and occurred_from > occurred_to:
        raise InvalidTimeRange("`from` is after `to`")
    return RecordFilter(
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        request_id=request_id,
        occurred_from=occurred_from,
        occurred_to=occurred_to,
    )


FilterDep = Annotated[RecordFilter, Depends(record_filter)]


def cursor_seq(
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the page before")
    ] = None,
) -> int | None:
    if cursor is None:
        return None
    seq = decode_cursor(cursor)
    if seq is None:
        raise InvalidRequest("This cursor is not one this API returned", code="invalid_cursor")
    return seq


CursorDep = Annotated[int | None, Depends(cursor_seq)]
