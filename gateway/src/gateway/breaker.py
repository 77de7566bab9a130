"""A circuit breaker per upstream service: closed → open → half-open (one probe) → closed."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from enum import IntEnum

from gateway.metrics import BREAKER_OPENED, BREAKER_STATE

log = logging.getLogger("paygate.gateway.breaker")


class BreakerState(IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    """Opens after `failure_threshold` consecutive failures (transport errors, timeouts, 5xx).

    While open every call is refused (503 + Retry-After) for `reset_seconds`; then one probe is
    let through (half-open). The probe's success closes the breaker, its failure reopens it.
    Per process: each replica protects itself from what it observes, no shared state needed.
    """

    def __init__(
        self,
        service: str,
        *,
        failure_threshold: int = 5,
        reset_seconds: float = 10.0,
        on_close: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.failure_threshold = max(1, failure_threshold)
        self.reset_seconds = reset_seconds
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self._probe_in_flight = False
        self._on_close = on_close
        self._clock = clock
        self._gauge = BREAKER_STATE.labels(service)
        self._gauge.set(0)

    def allow(self) -> bool:
        """May a request go to the upstream now? In half-open only the single probe may."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN:
            if self._clock() - self.opened_at < self.reset_seconds:
                return False
            self._set(BreakerState.HALF_OPEN)
        if self._probe_in_flight:
            return False
        self._probe_in_flight = True
        return True

    def retry_after(self) -> int:
        if self.state is BreakerState.OPEN:
            left = self.reset_seconds - (self._clock() - self.opened_at)
            return max(1, math.ceil(left))
        return 1

    def record_success(self) -> None:
        if self.state is BreakerState.CLOSED:
            self.failures = 0
            return
        self._probe_in_flight = False
        self.failures = 0
        self._set(BreakerState.CLOSED)
        log.warning("circuit to %s closed: the probe succeeded", self.service)
        if self._on_close is not None:
            self._on_close(self.service)

    def record_failure(self) -> None:
        if self.state is BreakerState.HALF_OPEN:
            self._probe_in_flight = False
            self._open()
            return
        self.failures += 1
        if self.state is BreakerState.CLOSED and self.failures >= self.failure_threshold:
            self._open()

    def release_probe(self) -> None:
        """The probe ended without telling anything (client went away): let another one try."""
        self._probe_in_flight = False

    def _open(self) -> None:
        self.opened_at = self._clock()
        self._set(BreakerState.OPEN)
        BREAKER_OPENED.labels(self.service).inc()
        log.warning(
            "circuit to %s opened after %d failures; retry in %.0fs",
            self.service,
            self.failures,
            self.reset_seconds,
        )

    def _set(self, state: BreakerState) -> None:
        self.state = state
        self._gauge.set(int(state))

    def snapshot(self) -> dict[str, object]:
        state = self.state
        if state is BreakerState.OPEN and self._clock() - self.opened_at >= self.reset_seconds:
            state = BreakerState.HALF_OPEN  # the next call will be the probe
        return {"state": state.name.lower().replace("_", "-"), "failures": self.failures}
