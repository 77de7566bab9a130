"""The analytics contract: transaction-service serves it at `/internal/analytics`, admin-service reads it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import Depends, Query
from pydantic import BaseModel, Field

from paygate_common.errors import business_rule
from paygate_common.money import Currency

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


# Every count and sum of an item, at zero: a period with nothing of one kind still has them all.
ZERO_FIGURES: dict[str, int] = {
    "count": 0,
    "succeeded": 0,
    "failed": 0,
    "volume": 0,
    "fees": 0,
    "refunds": 0,
    "refund_count": 0,
}


class AnalyticsRead(BaseModel):
    """`GET /internal/analytics` (transaction-service) = `GET /admin/analytics` (admin-service)."""

    period: AnalyticsPeriod
    date_from: date = Field(description="first period included (UTC)")
    date_to: date = Field(description="last day included (UTC)")
    # oldest first, then provider and currency: the order a chart draws them in
    items: list[AnalyticsItem]


# The window rule a schema-valid query can still break (both routes declare it as their 422).
ANALYTICS_WINDOW_INVALID = business_rule(
    "analytics_window_invalid",
    description="A window that ends before it starts, is longer than allowed or outside the "
    "calendar",
)


@dataclass(frozen=True)
class AnalyticsQuery:
    """The query both routes take (`period`, `currency`, `from`, `to`); admin-service forwards it."""

    period: AnalyticsPeriod = "day"
    currency: str | None = None
    date_from: date | None = None
    date_to: date | None = None

    def params(self) -> dict[str, Any]:
        """As query parameters for `GET /internal/analytics` (unset ones left out)."""
        given = {
            "period": self.period,
            "currency": self.currency,
            "from": self.date_from.isoformat() if self.date_from else None,
            "to": self.date_to.isoformat() if self.date_to else None,
        }
        return {k: v for k, v in given.items() if v is not None}


def analytics_query(
    period: AnalyticsPeriod = "day",
    currency: Currency | None = None,
    date_from: Annotated[date | None, Query(alias="from")] = None,
    date_to: Annotated[date | None, Query(alias="to")] = None,
) -> AnalyticsQuery:
    return AnalyticsQuery(period=period, currency=currency, date_from=date_from, date_to=date_to)


AnalyticsQueryDep = Annotated[AnalyticsQuery, Depends(analytics_query)]


def success_rate(succeeded: int, failed: int) -> float | None:
    """The share of finished attempts that succeeded, to four places; None when none finished."""
    finished = succeeded + failed
    return round(succeeded / finished, 4) if finished else None


__all__ = [
    "ANALYTICS_PATH",
    "ANALYTICS_WINDOW_INVALID",
    "ZERO_FIGURES",
    "AnalyticsItem",
    "AnalyticsPeriod",
    "AnalyticsQuery",
    "AnalyticsQueryDep",
    "AnalyticsRead",
    "analytics_query",
    "success_rate",
]
