"""Request and response schemas of the audit API (the trail's own are in `paygate_common.internal`)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel

from paygate_common.internal.audit import AuditRecordPage, AuditRecordRead, VerifyRead


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


__all__ = [
    "ActionsPerDay",
    "ArchiveRead",
    "AuditRecordPage",
    "AuditRecordRead",
    "CheckpointRead",
    "KeyCount",
    "SummaryRead",
    "VerifyRead",
]
