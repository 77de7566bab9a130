"""Keyset cursors for `{items, next_cursor}` lists, newest first on `(created_at, id)`; list filters."""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Generic, Protocol, TypeVar

import orjson
from fastapi import Query
from pydantic import BaseModel, BeforeValidator, Field

from paygate_common.errors import InvalidRequest

T = TypeVar("T")

CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,512}$"

CursorQuery = Annotated[
    str | None,
    Query(
        max_length=512,
        pattern=CURSOR_PATTERN,
        description="The `next_cursor` of the previous page; omit for the first page",
    ),
]
LimitQuery = Annotated[int, Query(ge=1, le=100, description="Page size")]

_ISO_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]")


def _iso_only(value: object) -> object:
    # pydantic also reads "0.1" or "1700000000" as seconds since the epoch; the document says
    # `format: date-time` (RFC 3339), so a number is refused rather than silently read
    if isinstance(value, str) and not _ISO_DATE_TIME.match(value):
        raise ValueError("an ISO 8601 date-time such as 2026-12-01T00:00:00Z")
    return value


# A `from`/`to` filter: RFC 3339 as documented, never an epoch number.
IsoDateTime = Annotated[datetime, BeforeValidator(_iso_only)]


class Page(BaseModel, Generic[T]):
    """One page of a list, newest first; pass `next_cursor` back as `cursor` for the next."""

    items: list[T]
    next_cursor: str | None = Field(description="null on the last page")


class InvalidCursor(InvalidRequest):
    code, title = "invalid_cursor", "The pagination cursor is not valid"


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    """An opaque cursor naming the last row of a page; the next page starts after it."""
    raw = orjson.dumps({"t": created_at.isoformat(), "id": str(row_id)})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """`(created_at, id)` from `encode_cursor`; 422 `invalid_cursor` for anything else."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        created_at = datetime.fromisoformat(data["t"])
        if created_at.tzinfo is None:
            raise ValueError("naive timestamp")
        return created_at, uuid.UUID(data["id"])
    except (ValueError, TypeError, KeyError, binascii.Error, orjson.JSONDecodeError):
        raise InvalidCursor("Use the next_cursor of a previous page") from None


class _Keyed(Protocol):
    @property
    def created_at(self) -> datetime: ...

    @property
    def id(self) -> uuid.UUID: ...


RowT = TypeVar("RowT", bound=_Keyed)


def split_page(rows: Sequence[RowT], limit: int) -> tuple[list[RowT], str | None]:
    """`limit + 1` rows fetched newest first → the page and the cursor of the next one (or None)."""
    items = list(rows[:limit])
    if len(rows) <= limit:
        return items, None
    return items, encode_cursor(items[-1].created_at, items[-1].id)
