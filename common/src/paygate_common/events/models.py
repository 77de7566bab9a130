"""Versioned payloads for every topic: orders, payments, refunds, users, config and audit."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

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
    # The payment context order-service read from user-service when it took the order, so
    # payment-service charges without asking again. All None in events of older producers, or
    # when the user had no method then: payment-service asks user-service itself. The token is
    # the provider's reference to the saved method (Stripe `pm_...`), never card data.
    payment_method_provider: str | None = None
    payment_method_token: str | None = Field(default=None, max_length=255, repr=False)
    provider_customer_id: str | None = Field(default=None, max_length=255)


class OrderCancelled(_Payload):
    """Topic `order.event`: the sweeper gave up on a pending order."""

    event_type: ClassVar[str] = "order.cancelled"
    order_id: uuid.UUID
    user_id: uuid.UUID
    reason: str


class PaymentStatus(StrEnum):
    """A payment's states (ARCHITECTURE.md, Payments). `pending` is the legacy name of
    `processing` kept for version-1 consumers; producers publish `processing`."""

    PENDING = "pending"
    PROCESSING = "processing"
    REQUIRES_ACTION = "requires_action"
    REQUIRES_CAPTURE = "requires_capture"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


class PaymentEvent(_Payload):
    """Topic `payment.event`; `event_type` is `payment.<status>` (payment.succeeded, ...).

    The amounts are the payment's totals after this transition, so a consumer (the ledger)
    can post the difference from what it saw last, whatever order events arrive in.
    """

    event_type: ClassVar[str] = "payment.event"
    payment_id: uuid.UUID
    # None for a payment created directly with POST /payments (no order behind it).
    order_id: uuid.UUID | None = None
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
    capture_method: str = "automatic"
    amount_capturable: int = 0
    amount_captured: int = 0
    amount_refunded: int = 0

    def envelope_type(self) -> str:
        return f"payment.{self.status.value}"


class RefundStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class RefundEvent(_Payload):
    """Topic `payment.event` (keyed by the payment id); `event_type` is `refund.<status>`."""

    event_type: ClassVar[str] = "refund.event"
    refund_id: uuid.UUID
    payment_id: uuid.UUID
    order_id: uuid.UUID | None = None
    user_id: uuid.UUID
    status: RefundStatus
    amount: int
    currency: str
    provider: str
    reason: str | None = None
    provider_reference: str | None = None
    failure_code: str | None = None

    def envelope_type(self) -> str:
        return f"refund.{self.status.value}"


class OrderRefundRequested(_Payload):
    """Topic `order.event`: the owner asked to refund an order (payment-service refunds it)."""

    event_type: ClassVar[str] = "order.refund_requested"
    order_id: uuid.UUID
    user_id: uuid.UUID
    amount: int | None = None  # None = the whole captured amount


class ConfigChanged(_Payload):
    """Topic `config.changed`: admin-service saved a new version of a configuration key."""

    event_type: ClassVar[str] = "config.changed"
    key: str
    config_version: int
    value: Any
    actor_id: uuid.UUID | None = None
    reason: str | None = None


class AuditOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DENIED = "denied"


class AuditAction(_Payload):
    """Topic `audit.event`: a security-relevant action (who did what, when, from where).

    `action` is `<entity>.<verb>` (ARCHITECTURE.md lists them: `auth.signed_in`,
    `api_key.created`, `payment.refund_requested`, ...). Never a secret, key or password in
    `details`; the audit service masks what it stores all the same.
    """

    event_type: ClassVar[str] = "audit.event"
    action: str
    outcome: AuditOutcome = AuditOutcome.SUCCEEDED
    actor_id: uuid.UUID | None = None
    actor_role: str | None = None
    entity_type: str
    entity_id: str | None = None
    source_ip: str | None = None
    request_id: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


EVENT_MODELS: dict[str, type[_Payload]] = {
    "user.registered": UserRegistered,
    "order.created": OrderCreated,
    "order.cancelled": OrderCancelled,
    "order.refund_requested": OrderRefundRequested,
    "config.changed": ConfigChanged,
    "audit.event": AuditAction,
    **{f"payment.{s.value}": PaymentEvent for s in PaymentStatus},
    **{f"refund.{s.value}": RefundEvent for s in RefundStatus},
}


def parse_payload(envelope: EventEnvelope) -> _Payload:
    """The typed payload of an envelope; raises KeyError for an unknown type."""
    return EVENT_MODELS[envelope.event_type].model_validate(envelope.payload)
