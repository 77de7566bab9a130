"""Request and response bodies of the transaction-service API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from paygate_common.money import AmountMinor, Currency


class LedgerLineRead(BaseModel):
    entry_id: int
    description: str | None
    posted_at: datetime
    account: str  # "<kind>:<owner>"
    currency: str
    debit: int
    credit: int


class TransactionRead(BaseModel):
    """One payment as the ledger sees it; `net` is what the merchant keeps."""

    id: uuid.UUID  # the payment id
    user_id: uuid.UUID
    order_id: uuid.UUID | None
    provider: str
    currency: str
    capture_method: str
    status: str
    amount: int
    amount_pending: int
    amount_captured: int
    amount_refunded: int
    fee: int
    fee_refunded: int
    net: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> TransactionRead:
        return cls(
            id=row.id,
            user_id=row.user_id,
            order_id=row.order_id,
            provider=row.provider,
            currency=row.currency,
            capture_method=row.capture_method,
            status=row.status,
            amount=row.amount,
            amount_pending=row.amount_pending,
            amount_captured=row.amount_captured,
            amount_refunded=row.amount_refunded,
            fee=row.fee,
            fee_refunded=row.fee_refunded,
            net=row.amount_captured - row.amount_refunded - row.fee + row.fee_refunded,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class TransactionDetailRead(TransactionRead):
    entries: list[LedgerLineRead]


class TransactionPageRead(BaseModel):
    items: list[TransactionRead]
    # Pass as `cursor` to get the next (older) page; null on the last page.
    next_cursor: str | None


class BalanceItem(BaseModel):
    currency: str
    available: int
    pending: int


class BalanceRead(BaseModel):
    items: list[BalanceItem]


class SummaryItem(BaseModel):
    period_start: date
    currency: str
    count: int  # payments with a capture in the period
    volume: int  # captured
    fees: int  # net of fees given back on refunds
    refunds: int
    refund_count: int


class SummaryRead(BaseModel):
    period: Literal["day", "month"]
    items: list[SummaryItem]


class TrialBalanceItem(BaseModel):
    currency: str
    debits: int
    credits: int


class TrialBalanceRead(BaseModel):
    items: list[TrialBalanceItem]


class AppliedConfigItem(BaseModel):
    key: str
    config_version: int  # admin-service's version of the key
    value: Any
    updated_at: datetime


class AppliedConfigRead(BaseModel):
    """Keys admin-service never set are absent: the settings' defaults apply to them."""

    items: list[AppliedConfigItem]


class ReservationCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "reference_id": "3b0f7c9e-1d2a-4c5b-9e7f-0a1b2c3d4e5f",
                    "user_id": "5d6e7f10-2a3b-4c4d-9e5f-6a7b8c9d0e1f",
                    "amount": 1999,
                    "currency": "usd",
                }
            ]
        },
    )

    # The order id, or the payment id of a payment made without an order.
    reference_id: uuid.UUID
    user_id: uuid.UUID
    amount: AmountMinor
    currency: Currency


class ReservationRead(BaseModel):
    reference_id: uuid.UUID
    user_id: uuid.UUID
    amount: int
    currency: str
    status: Literal["active", "consumed", "released"]
    created_at: datetime
