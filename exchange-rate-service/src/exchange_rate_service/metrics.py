"""Prometheus metrics of exchange-rate-service: feed fetches, rate age, cache fallbacks."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

FEED_FETCHES = Counter(
    "paygate_fx_feed_fetches_total",
    "Reference-rate feed fetches by outcome (succeeded, failed)",
    ["service", "feed", "outcome"],
)
RATES_AGE = Gauge(
    "paygate_fx_rates_age_seconds",
    "Age of the newest ECB reference rates held (since the start of their publication day)",
    ["service"],
)
CACHE_FALLBACKS = Counter(
    "paygate_fx_cache_fallbacks_total",
    "Redis cache operations that failed, so PostgreSQL answered (or the write was skipped)",
    ["service", "operation"],
)
CACHE_LOOKUPS = Counter(
    "paygate_fx_cache_lookups_total",
    "Rate snapshot lookups in the Redis cache by outcome (hit, miss, error)",
    ["service", "outcome"],
)
