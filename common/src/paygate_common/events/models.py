"""Versioned payloads for `order.create`, `payment.event`, `order.event` and `user.registered`."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from paygate_common.events.envelope import EventEnvelope


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore")
    event_type: ClassVar[str]
    version: ClassVar[int] = 1


class UserRegistered(_Payload):
    event_type: ClassVar[str] = "user.registered"
    user_id: uuid.UUID
    email: str
    full_name: str
    role: str


class OrderCreated(_Payload):
    """Topic `order.create`: payment-service charges it."""

    event_type: ClassVar[str] = "order.created"
    order_id: uuid.UUID
    user_id: uuid.UUID
    amount: int
    currency: str
    description: str | None = None
    # The saved method to charge; None means the user's default method.
    payment_method_id: uuid.UUID | None = None


class OrderCancelled(_Payload):
    """Topic `order.event`: the sweeper gave up on a pending order."""

    event_type: ClassVar[str] = "order.cancelled"
    order_id: uuid.UUID
    user_id: uuid.UUID
    reason: str


class PaymentStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REQUIRES_ACTION = "requires_action"
    REFUNDED = "refunded"
    CANCELLED = "cancelled"


class PaymentEvent(_Payload):
    """Topic `payment.event`; `event_type` is `payment.<status>` (payment.succeeded, ...)."""

    event_type: ClassVar[str] = "payment.event"
    payment_id: uuid.UUID
    order_id: uuid.UUID
    user_id: uuid.UUID
    status: PaymentStatus
    amount: int
    currency: str
    provider: str
    provider_reference: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    # What a client needs to finish 3-D Secure (e.g. a redirect URL); never a client secret.
    next_action: dict[str, Any] | None = None

    def envelope_type(self) -> str:
        return f"payment.{self.status.value}"


EVENT_MODELS: dict[str, type[_Payload]] = {
    "user.registered": UserRegistered,
    "order.created": OrderCreated,
    "order.cancelled": OrderCancelled,
    **{f"payment.{s.value}": PaymentEvent for s in PaymentStatus},
}


def parse_payload(envelope: EventEnvelope) -> _Payload:
    """The typed payload of an envelope; raises KeyError for an unknown type."""
    return EVENT_MODELS[envelope.event_type].model_validate(envelope.payload)
