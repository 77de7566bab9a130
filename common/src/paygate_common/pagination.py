"""Cursor pagination for every list endpoint: `{items, next_cursor}`, newest first, keyset cursors."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Generic, TypeVar

import orjson
from fastapi import Query
from pydantic import BaseModel, Field

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


class InvalidCursor(InvalidRequest):
    code, title = "invalid_cursor", "The pagination cursor is not valid"


class Page(BaseModel, Generic[T]):
    """One page of a list, newest first; pass `next_cursor` back as `cursor` for the next."""

    items: list[T]
    next_cursor: str | None = Field(description="null on the last page")


@dataclass(frozen=True)
class Keyset:
    """The position after which the next page starts: (created_at, id), both descending."""

    created_at: datetime
    id: str


def encode_cursor(created_at: datetime, item_id: uuid.UUID | str | int) -> str:
    raw = orjson.dumps({"t": created_at.isoformat(), "id": str(item_id)})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> Keyset:
    """The keyset a cursor names; 422 `invalid_cursor` for anything we did not issue."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        created_at = datetime.fromisoformat(data["t"])
        if created_at.tzinfo is None:
            raise ValueError("naive timestamp")
        return Keyset(created_at=created_at, id=str(data["id"]))
    except (ValueError, TypeError, KeyError, binascii.Error, orjson.JSONDecodeError):
        raise InvalidCursor("Use the next_cursor of a previous page") from None


def split_page(rows: Sequence[T], limit: int, cursor_of: Callable[[T], str]) -> Page[T]:
    """A page from `limit + 1` fetched rows: the extra row only tells that a next page exists."""
    items = list(rows[:limit])
    next_cursor = cursor_of(items[-1]) if len(rows) > limit and items else None
    return Page[T](items=items, next_cursor=next_cursor)
