"""notification-service's dead letters as types: what its admin route serves and the console reads.

notification-service declares `DeadLetterPage` as the `response_model` of
`GET /admin/notifications/dead-letters`; admin-service's console parses the answer with it.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict

DEAD_LETTERS_PATH = "/admin/notifications/dead-letters"


class DeadLetterRead(BaseModel):
    """A notification that gave up (or was replayed), with why and after how many attempts."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_id: uuid.UUID
    order_id: uuid.UUID | None
    payment_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    channel: str
    status: str
    subject: str
    attempts: int
    last_error: str | None
    created_at: datetime
    dead_lettered_at: datetime | None
    replayed_at: datetime | None
    replay_count: int


class DeadLetterPage(BaseModel):
    items: list[DeadLetterRead]
    total: int
    limit: int
    offset: int


__all__ = ["DEAD_LETTERS_PATH", "DeadLetterPage", "DeadLetterRead"]
