"""The gateway's Prometheus metrics; label children are cached so the hot path only increments."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "paygate_gateway_requests_total",
    "Requests answered by the gateway, by route prefix and status",
    ["route", "status"],
)
UPSTREAM_LATENCY = Histogram(
    "paygate_gateway_upstream_seconds",
    "Time from sending to an upstream until its response headers arrived",
    ["service"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15),
)
UPSTREAM_ERRORS = Counter(
    "paygate_gateway_upstream_errors_total",
    "Upstream failures by kind (connect, timeout, disconnect, status_5xx)",
    ["service", "kind"],
)
BREAKER_STATE = Gauge(
    "paygate_gateway_breaker_state",
    "Circuit breaker per upstream: 0 closed, 1 half-open, 2 open",
    ["service"],
)
BREAKER_OPENED = Counter(
    "paygate_gateway_breaker_opened_total", "Times a breaker opened", ["service"]
)
RATE_LIMITED = Counter("paygate_gateway_rate_limited_total", "Requests refused with 429", ["route"])
RATELIMIT_REDIS_UP = Gauge(
    "paygate_gateway_ratelimit_redis_up",
    "1 while rate-limit counters are synchronised through Redis, 0 on the local fallback",
)
RATELIMIT_FALLBACK = Counter(
    "paygate_gateway_ratelimit_fallback_decisions_total",
    "Rate-limit decisions taken on per-process counters because Redis was unreachable",
)
UPSTREAM_UP = Gauge(
    "paygate_gateway_upstream_ready",
    "1 when the upstream's /ready answered 200 at the last /health",
    ["service"],
)


class RequestCounter:
    """`REQUESTS.labels(...)` costs a lock and a dict lookup; cache the children."""

    def __init__(self) -> None:
        self._children: dict[tuple[str, int], Counter] = {}

    def inc(self, route: str, status: int) -> None:
        child = self._children.get((route, status))
        if child is None:
            child = REQUESTS.labels(route, str(status))
            self._children[(route, status)] = child
        child.inc()
