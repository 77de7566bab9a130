"""Analytics as transaction-service computes them, read with admin-service's service token."""

from __future__ import annotations

from typing import Any

from paygate_common.analytics import ANALYTICS_PATH, AnalyticsQuery, AnalyticsRead
from paygate_common.http import ServiceClient


async def fetch_analytics(
    ledger: ServiceClient, query: AnalyticsQuery | None = None
) -> AnalyticsRead:
    """`GET /internal/analytics`; an error answer raises `UpstreamStatusError`, an outage
    `DependencyUnavailable` (the shared handler renders both as problem+json)."""
    params = (query or AnalyticsQuery()).params()
    return await ledger.call_as(AnalyticsRead, "GET", ANALYTICS_PATH, params=params)


def chart_series(analytics: AnalyticsRead) -> dict[str, Any]:
    """What the overview's charts draw: per period, volume and refunds per currency and the
    success rate over every provider and currency (null where no payment finished)."""
    periods = sorted({i.period_start.isoformat() for i in analytics.items})
    currencies = sorted({i.currency for i in analytics.items})
    index = {p: n for n, p in enumerate(periods)}
    volume = {c: [0] * len(periods) for c in currencies}
    refunds = {c: [0] * len(periods) for c in currencies}
    succeeded = [0] * len(periods)
    finished = [0] * len(periods)
    for item in analytics.items:
        at = index[item.period_start.isoformat()]
        volume[item.currency][at] += item.volume
        refunds[item.currency][at] += item.refunds
        succeeded[at] += item.succeeded
        finished[at] += item.succeeded + item.failed
    return {
        "periods": periods,
        "volume": volume,
        "refunds": refunds,
        "success_rate": [
            round(100 * ok / done, 1) if done else None
            for ok, done in zip(succeeded, finished, strict=True)
        ],
    }
