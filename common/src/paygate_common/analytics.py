"""The analytics contract: transaction-service serves it at `/internal/analytics`, admin-service reads it."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field

# The route, so admin-service and a stand-in name the same path as transaction-service's router.
ANALYTICS_PATH = "/internal/analytics"

AnalyticsPeriod = Literal["day", "month"]


class AnalyticsItem(BaseModel):
    """One period (UTC), provider and currency.

    Attempts are counted on the day the payment was created; money on the day the ledger posted
    it (a capture two days after the authorisation counts on the capture's day).
    """

    period_start: date
    provider: str
    currency: str
    count: int = Field(ge=0, description="payments created in the period")
    succeeded: int = Field(ge=0, description="of those, captured (also when refunded later)")
    failed: int = Field(ge=0, description="of those, failed")
    # succeeded / (succeeded + failed); null while none of the period's payments has finished
    success_rate: float | None = Field(default=None, ge=0, le=1)
    volume: int = Field(ge=0, description="captured in the period, minor units")
    fees: int = Field(description="fees charged, net of fees given back on refunds")
    refunds: int = Field(ge=0, description="refunded in the period, minor units")
    refund_count: int = Field(ge=0, description="payments with a refund posted in the period")


class AnalyticsRead(BaseModel):
    """`GET /internal/analytics` (transaction-service) = `GET /admin/analytics` (admin-service)."""

    period: AnalyticsPeriod
    date_from: date = Field(description="first period included (UTC)")
    date_to: date = Field(description="last day included (UTC)")
    # oldest first, then provider and currency: the order a chart draws them in
    items: list[AnalyticsItem]


def success_rate(succeeded: int, failed: int) -> float | None:
    """The share of finished attempts that succeeded, to four places; None when none finished."""
    finished = succeeded + failed
    return round(succeeded / finished, 4) if finished else None


__all__ = ["AnalyticsItem", "AnalyticsPeriod", "AnalyticsRead", "success_rate"]
