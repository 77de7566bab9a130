"""Response schemas: what a customer and an operator see of a notification (never its body)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict


class NotificationRead(BaseModel):
    """One notification of the caller, naming the order and payment it is about."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    order_id: uuid.UUID | None
    payment_id: uuid.UUID
    event_type: str
    channel: str
    status: str
    subject: str
    attempts: int
    created_at: datetime
    sent_at: datetime | None
    replayed: bool = False
    replayed_at: datetime | None


class NotificationPage(BaseModel):
    items: list[NotificationRead]
    total: int
    limit: int
    offset: int
