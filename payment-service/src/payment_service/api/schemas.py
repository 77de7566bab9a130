"""Request and response bodies of payment-service."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from paygate_common.money import AmountMinor, Currency
from paygate_common.text import SINGLE_LINE_PATTERN, Description, SingleLine
from payment_service.domain.states import public_status

ProviderName = Literal["stripe", "paypal", "sslcommerz", "sandbox"]
# A provider token from Stripe.js (or a Stripe test token such as pm_card_visa); never a card.
PaymentMethodToken = Annotated[
    str, StringConstraints(pattern=r"^pm_[A-Za-z0-9_]{1,250}$", max_length=255)
]
# One line each (PostgreSQL's JSONB cannot even store a NUL; no control character is data).
MetadataKey = Annotated[
    str,
    StringConstraints(min_length=1, max_length=40),
    SingleLine,
    Field(json_schema_extra={"pattern": SINGLE_LINE_PATTERN}),
]
MetadataValue = Annotated[
    str,
    StringConstraints(max_length=500),
    SingleLine,
    Field(json_schema_extra={"pattern": SINGLE_LINE_PATTERN}),
]
# The same in the document: keys and values, not only values matching a key pattern.
METADATA_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {
            "type": "object",
            "maxProperties": 20,
            "propertyNames": {"minLength": 1, "maxLength": 40, "pattern": SINGLE_LINE_PATTERN},
            "additionalProperties": {
                "type": "string",
                "maxLength": 500,
                "pattern": SINGLE_LINE_PATTERN,
            },
        },
        {"type": "null"},
    ]
}
Reason = Annotated[str, StringConstraints(min_length=1, max_length=500, strip_whitespace=True)]


class PaymentCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"amount": 1000, "currency": "usd", "capture_method": "manual"}],
            # `_one_method` in the document: not a saved method and a token at once
            "not": {
                "required": ["payment_method_id", "payment_method"],
                "properties": {
                    "payment_method_id": {"type": "string"},
                    "payment_method": {"type": "string"},
                },
            },
            # and the checkout rule: a return_url, and no method (the customer picks it)
            "if": {"required": ["checkout"], "properties": {"checkout": {"const": True}}},
            "then": {
                "required": ["return_url"],
                "properties": {
                    "return_url": {"type": "string"},
                    "payment_method_id": {"type": "null"},
                    "payment_method": {"type": "null"},
                },
            },
        },
    )

    amount: AmountMinor
    # Normalised: "USD" is accepted and stored (and compared for Idempotency-Key) as "usd".
    currency: Currency
    provider: ProviderName | None = None
    # A saved method of the caller (user-service), or a provider token; neither = the default.
    payment_method_id: uuid.UUID | None = None
    payment_method: PaymentMethodToken | None = None
    capture_method: Literal["automatic", "manual"] = "automatic"
    description: Description | None = None
    # Like Stripe's: at most 20 keys of 40 characters, values of 500.
    metadata: dict[MetadataKey, MetadataValue] | None = Field(
        default=None, max_length=20, json_schema_extra=METADATA_SCHEMA
    )
    return_url: AnyHttpUrl | None = None
    # The customer pays on paygate's hosted page (`next_action.redirect_to_url`), which then
    # sends them back to `return_url` (required); the card is chosen there, not given here.
    checkout: bool = False

    @model_validator(mode="after")
    def _one_method(self) -> PaymentCreate:
        if self.payment_method_id is not None and self.payment_method is not None:
            raise ValueError("give payment_method_id or payment_method, not both")
        if self.checkout:
            if self.return_url is None:
                raise ValueError("checkout needs a return_url to send the customer back to")
            if self.payment_method_id is not None or self.payment_method is not None:
                raise ValueError("with checkout the customer picks the payment method")
        return self


class CaptureRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Omitted: everything capturable. Less: the rest of the authorisation is released.
    amount: AmountMinor | None = None


class RefundCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Omitted: everything still refundable.
    amount: AmountMinor | None = None
    reason: Reason | None = None


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
    order_id: uuid.UUID | None
    user_id: uuid.UUID
    amount: int
    currency: str
    status: str
    provider: str
    provider_reference: str | None
    capture_method: str
    amount_capturable: int
    amount_captured: int
    amount_refunded: int
    capture_before: datetime | None
    failure_code: str | None
    decline_code: str | None
    failure_message: str | None
    next_action: dict[str, Any] | None
    description: str | None
    metadata: dict[str, str] | None
    return_url: str | None
    # Paid on the hosted checkout page (created with `checkout: true`).
    checkout: bool = False
    attempts: list[PaymentAttemptRead] | None = None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, payment: Any, attempts: Any = None) -> PaymentRead:
        values = {k: v for k, v in payment._mapping.items() if k in cls.model_fields}
        values["status"] = public_status(payment.status).value
        action = payment.next_action
        redirect = (action or {}).get("redirect_to_url")
        if payment.return_url and isinstance(redirect, dict) and not redirect.get("return_url"):
            action = {**action, "redirect_to_url": {**redirect, "return_url": payment.return_url}}
        values["next_action"] = action
        if attempts is not None:
            values["attempts"] = [
                PaymentAttemptRead.model_validate(dict(a._mapping)) for a in attempts
            ]
        return cls(**values)


class PaymentPageRead(BaseModel):
    items: list[PaymentRead]
    # Pass as `cursor` for the next (older) page; null on the last page.
    next_cursor: str | None


class RefundRead(BaseModel):
    id: uuid.UUID
    payment_id: uuid.UUID
    amount: int
    currency: str
    status: Literal["pending", "succeeded", "failed"]
    reason: str | None
    source: str
    provider_reference: str | None
    failure_code: str | None
    failure_message: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, refund: Any) -> RefundRead:
        return cls(**{k: v for k, v in refund._mapping.items() if k in cls.model_fields})


class RefundListRead(BaseModel):
    items: list[RefundRead]


class PaymentReturnRead(BaseModel):
    """What a customer's browser is shown back from a provider when the payment has no return_url."""

    id: uuid.UUID
    status: str


class WebhookAck(BaseModel):
    received: bool = True
    duplicate: bool = False
