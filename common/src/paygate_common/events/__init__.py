"""Event contracts: the envelope, topic names and versioned payload models shared by every service."""

from paygate_common.events.envelope import EventEnvelope, new_event
from paygate_common.events.models import (
    EVENT_MODELS,
    OrderCancelled,
    OrderCreated,
    PaymentEvent,
    PaymentStatus,
    UserRegistered,
    parse_payload,
)
from paygate_common.events.topics import (
    ALL_TOPICS,
    NOTIFICATION_DLQ,
    ORDER_CREATE,
    ORDER_EVENT,
    PAYMENT_DLQ,
    PAYMENT_EVENT,
    USER_REGISTERED,
)

__all__ = [
    "ALL_TOPICS",
    "EVENT_MODELS",
    "NOTIFICATION_DLQ",
    "ORDER_CREATE",
    "ORDER_EVENT",
    "PAYMENT_DLQ",
    "PAYMENT_EVENT",
    "USER_REGISTERED",
    "EventEnvelope",
    "OrderCancelled",
    "OrderCreated",
    "PaymentEvent",
    "PaymentStatus",
    "UserRegistered",
    "new_event",
    "parse_payload",
]
