"""Request and response schemas of the audit API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field


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


class ActionsPerDay(BaseModel):
    day: date
    action: str
    count: int


class KeyCount(BaseModel):
    key: str | None
    count: int


class SummaryRead(BaseModel):
    since: datetime
    until: datetime
    actions_per_day: list[ActionsPerDay]
    failed_signins_per_account: list[KeyCount]
    failed_signins_per_ip: list[KeyCount]
    refunds_per_actor: list[KeyCount]


class CheckpointRead(BaseModel):
    id: int
    created_at: datetime
    record_count: int
    head_seq: int
    head_hash: str
    signature: str


class ArchiveRead(BaseModel):
    id: int
    created_at: datetime
    from_seq: int
    to_seq: int
    record_count: int
    first_prev_hash: str
    last_hash: str
    location: str
    sha256: str
    signature: str
