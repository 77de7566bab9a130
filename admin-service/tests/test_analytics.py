"""What the overview charts draw from the ledger's analytics: per currency, and one success rate."""

from __future__ import annotations

from datetime import date

from admin_service.domain.analytics import chart_series
from paygate_common.analytics import ZERO_FIGURES, AnalyticsItem, AnalyticsRead


def item(day: int, provider: str, currency: str, **figures: int) -> AnalyticsItem:
    return AnalyticsItem(
        period_start=date(2026, 12, day),
        provider=provider,
        currency=currency,
        **{**ZERO_FIGURES, **figures},
    )


def test_providers_add_up_per_currency_and_the_success_rate_spans_all_of_them() -> None:
    analytics = AnalyticsRead(
        period="day",
        date_from=date(2026, 12, 1),
        date_to=date(2026, 12, 2),
        items=[
            item(1, "stripe", "usd", count=3, succeeded=2, failed=1, volume=500, refunds=100),
            item(1, "paypal", "usd", count=1, succeeded=1, volume=250),
            item(1, "stripe", "eur", count=1, failed=1),
            item(2, "stripe", "usd", count=1),  # authorised, not finished
        ],
    )
    series = chart_series(analytics)
    assert series["periods"] == ["2026-12-01", "2026-12-02"]
    assert series["volume"] == {"eur": [0, 0], "usd": [750, 0]}
    assert series["refunds"]["usd"] == [100, 0]
    # 3 of 5 finished payments on the 1st; nothing finished on the 2nd: no rate, not 0 %
    assert series["success_rate"] == [60.0, None]
