"""Response schemas of payment-service."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel


class PaymentAttemptRead(BaseModel):
    attempt_no: int
    status: str
    idempotency_key: str
    provider_reference: str | None
    failure_code: str | None
    failure_message: str | None
    started_at: datetime
    finished_at: datetime | None


class PaymentRead(BaseModel):
    id: uuid.UUID
    order_id: uuid.UUID
    user_id: uuid.UUID
    amount: int
    currency: str
    status: str
    provider: str
    provider_reference: str | None
    failure_code: str | None
    decline_code: str | None
    failure_message: str | None
    next_action: dict[str, Any] | None
    attempts: list[PaymentAttemptRead]
    created_at: datetime
    updated_at: datetime


class WebhookAck(BaseModel):
    received: bool = True
    duplicate: bool = False
