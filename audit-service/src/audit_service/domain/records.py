"""What an event becomes in the trail: action, actor, entity, outcome, masked details."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from paygate_common.events import EventEnvelope
from paygate_common.events.models import AuditAction
from paygate_common.masking import mask_data, mask_text

# The payload field naming the event's own entity, by event-type prefix (`payment.succeeded`).
_ENTITY_ID_FIELD = {
    "order": "order_id",
    "payment": "payment_id",
    "refund": "refund_id",
    "user": "user_id",
    "config": "key",
}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    masked = mask_text(str(value))
    return masked or None


def draft_record(envelope: EventEnvelope) -> dict[str, Any]:
    """The columns of an audit record for one consumed envelope, masked, without its links.

    An `audit.event` keeps its own action, actor, entity, outcome, source IP and request id;
    any other event is recorded with its event type as the action, its user as the actor and
    its own id (payment_id, refund_id, ...) as the entity. Unknown event types are recorded
    too: an audit trail that skips what it does not understand is not a trail.
    """
    payload = envelope.payload
    record: dict[str, Any] = {
        "id": uuid.uuid4(),
        "event_id": envelope.event_id,
        "event_type": envelope.event_type,
        "producer": envelope.producer,
        "occurred_at": envelope.occurred_at.astimezone(UTC),
        "recorded_at": datetime.now(UTC),
        "aggregate_id": _text(envelope.aggregate_id),
        "request_id": _text(envelope.correlation_id),
    }
    if envelope.event_type == AuditAction.event_type:
        action = AuditAction.model_validate(payload)
        record.update(
            action=mask_text(action.action),
            outcome=action.outcome.value,
            actor_id=_text(action.actor_id),
            actor_role=_text(action.actor_role),
            entity_type=mask_text(action.entity_type),
            entity_id=_text(action.entity_id),
            source_ip=_text(action.source_ip),
            # The envelope's correlation id first: the one id that follows the whole call.
            request_id=record["request_id"] or _text(action.request_id),
            details=mask_data(action.details),
        )
        return record
    kind = envelope.event_type.partition(".")[0] or envelope.event_type
    entity_field = _ENTITY_ID_FIELD.get(kind)
    entity_id = payload.get(entity_field) if entity_field else None
    actor = payload.get("actor_id") or payload.get("user_id")
    record.update(
        action=mask_text(envelope.event_type),
        outcome=None,
        actor_id=_text(actor),
        actor_role=None,
        entity_type=mask_text(kind),
        entity_id=_text(entity_id) or record["aggregate_id"],
        source_ip=None,
        details=mask_data(payload),
    )
    return record
