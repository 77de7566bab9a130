"""Several instances per upstream service: least outstanding requests, passive health checks.

Each service has one `Balancer` over its instances (`GATEWAY_<SERVICE>_URLS`, default the one
registry address), each `Instance` with its own keep-alive pool (client.py). The proxy asks
`pick()` for an instance, and reports every outcome with `success()` / `failure()`:

- **Selection**: the healthy instance with the fewest requests in flight; ties go round-robin
  (the scan starts one further each call), so an idle suite still spreads its calls.
- **Passive health**: `eject_after` consecutive failures (connection refused or reset, broken
  HTTP, timeout, a 5xx answer) eject an instance for `eject_seconds`; when that has passed the
  next pick sends it ONE request (half-open, like the breaker's probe). The probe's success
  brings it back; its failure ejects it again for twice as long (at most `eject_max_seconds`).
- **Panic**: when every instance is ejected, requests go to all of them again (as Envoy does
  below its panic threshold): the service-wide breaker (breaker.py) is then what sheds load.
  A single instance is never ejected; its breaker alone decides, as before this module.

No active health-check traffic: with the suite's request rates the passive signal comes within
milliseconds, and the probe is a real request that `Proxy` retries elsewhere if it is refused.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from paygate_common.http_client import UpstreamPool


class Instance:
    """One upstream address, its pool and what the gateway has seen of it."""

    __slots__ = (
        "cooldown",
        "ejected_until",
        "ejections",
        "errors",
        "failures",
        "outstanding",
        "pool",
        "probing",
        "requests",
        "service",
        "url",
    )

    def __init__(self, service: str, url: str, pool: UpstreamPool, cooldown: float) -> None:
        self.service = service
        self.url = url
        self.pool = pool
        self.outstanding = 0  # requests sent and not yet answered (or failed)
        self.failures = 0  # consecutive
        self.ejected_until = 0.0  # loop time; 0 = in rotation
        self.cooldown = cooldown  # the next ejection's length
        self.probing = False  # the half-open probe is in flight
        self.requests = 0
        self.errors = 0
        self.ejections = 0

    @property
    def state(self) -> str:
        if not self.ejected_until:
            return "healthy"
        return "probing" if self.probing else "ejected"


class Balancer:
    """Picks an instance of one service for each request and keeps their health."""

    def __init__(
        self,
        service: str,
        urls: list[str],
        *,
        pool: Callable[[str], UpstreamPool],
        eject_after: int = 3,
        eject_seconds: float = 5.0,
        eject_max_seconds: float = 30.0,
        clock: Callable[[], float],
    ) -> None:
        if not urls:
            raise ValueError(f"{service}: no upstream URL")
        self.service = service
        self.eject_after = max(1, eject_after)
        self.eject_seconds = eject_seconds
        self.eject_max_seconds = max(eject_seconds, eject_max_seconds)
        self.clock = clock
        self.instances = tuple(
            Instance(service, url.rstrip("/"), pool(url.rstrip("/")), eject_seconds)
            for url in dict.fromkeys(urls)
        )
        self.single = len(self.instances) == 1
        self._turn = itertools.count()
        _LIVE[service] = self

    @property
    def urls(self) -> list[str]:
        return [i.url for i in self.instances]

    def pick(self, tried: tuple[Instance, ...] = ()) -> Instance:
        """The instance for the next attempt, preferring ones this request has not tried."""
        instances = self.instances
        if self.single:
            return instances[0]
        n = len(instances)
        start = next(self._turn) % n
        best: Instance | None = None
        now = 0.0
        for k in range(n):
            inst = instances[(start + k) % n]
            if inst in tried:
                continue
            if inst.ejected_until:
                if inst.probing:
                    continue
                now = now or self.clock()
                if now < inst.ejected_until:
                    continue
                inst.probing = True  # cool-down over: this request is its half-open probe
                return inst
            if best is None or inst.outstanding < best.outstanding:
                best = inst
        if best is not None:
            return best
        # Everything untried is ejected (panic) or everything was tried: least loaded of all.
        pool = [i for i in instances if i not in tried] or list(instances)
        return min(pool, key=lambda i: i.outstanding)

    def success(self, inst: Instance) -> None:
        inst.requests += 1
        inst.failures = 0
        if inst.ejected_until:
            inst.ejected_until = 0.0
            inst.probing = False
            inst.cooldown = self.eject_seconds

    def failure(self, inst: Instance) -> None:
        inst.requests += 1
        inst.errors += 1
        inst.failures += 1
        if self.single:
            return
        if inst.probing:  # the probe failed: out again, for longer
            inst.probing = False
            inst.cooldown = min(self.eject_max_seconds, inst.cooldown * 2)
            inst.ejected_until = self.clock() + inst.cooldown
            inst.ejections += 1
        elif not inst.ejected_until and inst.failures >= self.eject_after:
            inst.ejected_until = self.clock() + inst.cooldown
            inst.ejections += 1

    def release(self, inst: Instance) -> None:
        """The attempt ended without telling anything (client gone): let another probe go."""
        inst.probing = False

    def snapshot(self) -> list[dict[str, object]]:
        return [
            {
                "url": i.url,
                "state": i.state,
                "outstanding": i.outstanding,
                "requests": i.requests,
                "failures": i.errors,
                "ejections": i.ejections,
            }
            for i in self.instances
        ]


# The balancers of the newest gateway in this process, for /metrics (tests start several).
_LIVE: dict[str, Balancer] = {}


class _InstanceCollector(Collector):
    """Per-instance metrics, read from the balancers at scrape time (nothing on the hot path)."""

    def collect(self) -> Iterator[Metric]:
        labels = ["service", "instance"]
        requests = CounterMetricFamily(
            "paygate_gateway_instance_requests",
            "Attempts sent to each upstream instance (retries count on the instance they hit)",
            labels=labels,
        )
        failures = CounterMetricFamily(
            "paygate_gateway_instance_failures",
            "Attempts that failed on an instance: connect/disconnect/timeout/5xx",
            labels=labels,
        )
        ejections = CounterMetricFamily(
            "paygate_gateway_instance_ejections",
            "Times an instance was taken out of rotation by the passive health check",
            labels=labels,
        )
        outstanding = GaugeMetricFamily(
            "paygate_gateway_instance_outstanding",
            "Requests in flight to each instance",
            labels=labels,
        )
        healthy = GaugeMetricFamily(
            "paygate_gateway_instance_healthy",
            "1 while the instance is in rotation, 0 while ejected",
            labels=labels,
        )
        for service, balancer in sorted(_LIVE.items()):
            for inst in balancer.instances:
                key = [service, inst.url]
                requests.add_metric(key, inst.requests)
                failures.add_metric(key, inst.errors)
                ejections.add_metric(key, inst.ejections)
                outstanding.add_metric(key, inst.outstanding)
                healthy.add_metric(key, 0 if inst.ejected_until else 1)
        yield from (requests, failures, ejections, outstanding, healthy)


REGISTRY.register(_InstanceCollector())
