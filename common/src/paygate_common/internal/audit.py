"""audit-service's trail as types: what its admin routes serve and admin-service's console reads.

audit-service declares these as the `response_model` of `GET /admin/audit/events` and
`GET /admin/audit/verify`; the console parses the same answers with them (`parse_answer`), so
the two cannot disagree on a field without a test noticing.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

AUDIT_EVENTS_PATH = "/admin/audit/events"
AUDIT_VERIFY_PATH = "/admin/audit/verify"


class AuditRecordRead(BaseModel):
    """One record of the trail, masked; `hash = SHA-256(prev_hash ‖ canonical JSON)`."""

    seq: int
    id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    producer: str
    occurred_at: datetime
    recorded_at: datetime
    action: str
    outcome: str | None
    actor_id: str | None
    actor_role: str | None
    entity_type: str
    entity_id: str | None
    aggregate_id: str | None
    source_ip: str | None
    request_id: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str


class AuditRecordPage(BaseModel):
    items: list[AuditRecordRead]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null at the end"
    )


class VerifyRead(BaseModel):
    ok: bool
    checked: int = Field(description="records whose link and hash were checked")
    first_broken_id: uuid.UUID | None = Field(
        description="the first record that does not hold (altered, unlinked or after a gap)"
    )
    first_broken_seq: int | None = None
    reason: str | None = None
    head_seq: int | None = None
    checkpoint_seq: int | None = Field(None, description="head seq of the latest signed checkpoint")


__all__ = [
    "AUDIT_EVENTS_PATH",
    "AUDIT_VERIFY_PATH",
    "AuditRecordPage",
    "AuditRecordRead",
    "VerifyRead",
]
