"""Keyset cursors for `{items, next_cursor}` lists, newest first on `(created_at, id)`."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime

import orjson

from paygate_common.errors import InvalidRequest


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
