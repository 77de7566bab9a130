"""The envelope every event travels in: id, type, version, time, producer, correlation id."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from paygate_common.logging import current_request_id


class EventEnvelope(BaseModel):
    """Within a version, fields are only ever added; consumers ignore what they do not know."""

    model_config = ConfigDict(extra="allow", frozen=True)

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    event_type: str
    version: int = 1
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    producer: str
    correlation_id: str | None = None
    # The entity the event is about; also the Kafka key, so one order's events stay in order.
    aggregate_id: str
    payload: dict[str, Any]

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> EventEnvelope:
        return cls.model_validate_json(raw)


def new_event(
    payload: BaseModel, *, producer: str, aggregate_id: str, correlation_id: str | None = None
) -> EventEnvelope:
    """Wrap a typed payload (its class carries `event_type` and `version`)."""
    event_type_of = getattr(payload, "envelope_type", None)
    return EventEnvelope(
        event_type=event_type_of() if event_type_of else payload.event_type,  # type: ignore[attr-defined]
        version=payload.version,  # type: ignore[attr-defined]
        producer=producer,
        aggregate_id=aggregate_id,
        correlation_id=correlation_id or current_request_id(),
        payload=payload.model_dump(mode="json"),
    )
