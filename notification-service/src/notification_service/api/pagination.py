"""`limit`/`offset` of the offset-paged lists (cursor lists use `paygate_common.pagination`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from paygate_common.pagination import LimitQuery as Limit

Offset = Annotated[int, Query(ge=0, le=100_000, description="Items to skip")]

__all__ = ["Limit", "Offset"]
