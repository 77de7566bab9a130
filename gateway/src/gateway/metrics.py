"""The gateway's Prometheus metrics.

The two that move on every proxied request (`paygate_gateway_requests_total`,
`paygate_gateway_upstream_seconds`) are plain Python integers and floats, turned into metric
families only when `/metrics` is scraped (`_HotPathCollector`): prometheus_client's `Counter.inc`
and `Histogram.observe` take a lock and walk label children on each call, which the profile
showed on the hot path. The gateway is one event-loop thread, so plain `+=` is safe. The rare
ones (errors, breaker, rate-limit store) stay ordinary prometheus_client metrics.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15)

# (route prefix, status) -> requests answered; shared by every Proxy in the process
_request_counts: dict[tuple[str, int], int] = {}


class LatencyHistogram:
    """One service's `paygate_gateway_upstream_seconds` histogram: bucket counts and a sum."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds


_latency: dict[str, LatencyHistogram] = {}


def upstream_latency(service: str) -> LatencyHistogram:
    histogram = _latency.get(service)
    if histogram is None:
        histogram = _latency[service] = LatencyHistogram()
    return histogram


class _HotPathCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "paygate_gateway_requests",
            "Requests answered by the gateway, by route prefix and status",
            labels=["route", "status"],
        )
        for (route, status), count in sorted(_request_counts.items()):
            requests.add_metric([route, str(status)], count)
        yield requests
        latency = HistogramMetricFamily(
            "paygate_gateway_upstream_seconds",
            "Time from sending to an upstream until its response headers arrived",
            labels=["service"],
        )
        for service, histogram in sorted(_latency.items()):
            cumulative = 0
            buckets = []
            for bound, count in zip(
                (*LATENCY_BUCKETS, float("inf")), histogram.counts, strict=True
            ):
                cumulative += count
                buckets.append(
                    ("+Inf" if bound == float("inf") else repr(float(bound)), cumulative)
                )
            latency.add_metric([service], buckets, sum_value=histogram.total)
        yield latency


REGISTRY.register(_HotPathCollector())
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
    """`paygate_gateway_requests_total`: one dict increment per answer."""

    __slots__ = ()

    def inc(self, route: str, status: int) -> None:
        key = (route, status)
        _request_counts[key] = _request_counts.get(key, 0) + 1


class OperatorListener:
    """`GET /metrics` on its own (operator) port, away from the public listener.

    A tiny HTTP/1.1 server on asyncio instead of a second uvicorn: a nested uvicorn server would
    install its own signal handlers over the main one's. It answers one request per connection.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, _, rest = head.partition(b" ")
            target = rest.split(b" ", 1)[0].split(b"?", 1)[0]
            if method in (b"GET", b"HEAD") and target == b"/metrics":
                body = generate_latest()
                status, ctype = b"200 OK", CONTENT_TYPE_LATEST.encode()
            else:
                body, status, ctype = b"not found\n", b"404 Not Found", b"text/plain"
            writer.write(
                b"HTTP/1.1 %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n"
                b"connection: close\r\n\r\n" % (status, ctype, len(body))
            )
            if method != b"HEAD":
                writer.write(body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            writer.close()

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
