"""Request and response bodies of the orders API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from order_service.store.orders import OrderRecord
from paygate_common.money import AmountMinor, Currency
from paygate_common.text import Description

OrderStatusName = Literal["pending", "paid", "failed", "requires_action", "cancelled", "refunded"]


class OrderCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"amount": 1999, "currency": "usd"}]},
    )

    amount: AmountMinor
    currency: Currency
    description: Description | None = None
    # A saved method of the caller (user-service); omitted means the default method.
    payment_method_id: uuid.UUID | None = None


class OrderRefund(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Omitted: everything captured that is not refunded yet.
    amount: AmountMinor | None = None


class PaymentSummary(BaseModel):
    """From the latest payment event applied to the order."""

    payment_id: uuid.UUID
    provider: str | None
    failure_code: str | None
    failure_message: str | None
    # What the client needs to finish 3-D Secure (e.g. a redirect URL); never a client secret.
    next_action: dict[str, Any] | None


class OrderRead(BaseModel):
    id: uuid.UUID
    user_id: uuid.UUID
    amount: int
    currency: str
    description: str | None
    payment_method_id: uuid.UUID | None
    status: OrderStatusName
    cancel_reason: str | None
    created_at: datetime
    updated_at: datetime
    payment: PaymentSummary | None

    @classmethod
    def from_record(cls, order: OrderRecord) -> OrderRead:
        payment = None
        if order.payment_id is not None:
            payment = PaymentSummary(
                payment_id=order.payment_id,
                provider=order.payment_provider,
                failure_code=order.failure_code,
                failure_message=order.failure_message,
                next_action=order.next_action,
            )
        return cls(
            id=order.id,
            user_id=order.user_id,
            amount=order.amount,
            currency=order.currency,
            description=order.description,
            payment_method_id=order.payment_method_id,
            status=order.status,
            cancel_reason=order.cancel_reason,
            created_at=order.created_at,
            updated_at=order.updated_at,
            payment=payment,
        )


class OrderStatusRead(BaseModel):
    id: uuid.UUID
    status: OrderStatusName


class OrderPageRead(BaseModel):
    items: list[OrderRead]
    # Pass as `cursor` to get the next (older) page; null on the last page.
    next_cursor: str | None
