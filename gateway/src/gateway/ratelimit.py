"""Rate limits shared by every gateway replica through Redis, without a Redis trip per request.

Why two levels: a Redis round trip per request (redis-py, EVALSHA) cost the gateway a large
share of its throughput in the benchmark, because the proxy's CPU budget per request is a few
tens of microseconds. So each process decides locally and synchronises with Redis in batches:

- Limits are parsed by the `limits` library (`100/second`, `1000/minute;20/second`) and counted
  in fixed windows aligned to the wall clock (`floor(now / window)`), so every replica agrees on
  which window a request belongs to and the Redis key names the window.
- A request is allowed when `synced + in_flight + pending < amount`, where `synced` is the
  window's total that Redis last reported (all replicas) and `pending` the hits this process has
  admitted since. Admitting a hit only bumps `pending`.
- Every `sync_ms` (5 ms by default), if anything is pending, one pipelined round trip does
  `INCRBY key pending` + `EXPIRE` for every dirty key and stores the returned totals as `synced`.

Redis is the source of truth; the tolerance is what other replicas admit before they learn the
new total: at most (replicas - 1) x (hits one replica admits for that key within one sync
interval + Redis RTT). A single replica is exact. If Redis is unreachable the same counters keep
working per process (the local fallback limit), a warning is logged once, the
`paygate_gateway_ratelimit_redis_up` gauge drops to 0 and decisions are counted in
`paygate_gateway_ratelimit_fallback_decisions_total`; sync is retried every second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse_many

from gateway.metrics import RATELIMIT_FALLBACK, RATELIMIT_REDIS_UP
from gateway.resp import RespClient, RespError

log = logging.getLogger("paygate.gateway.ratelimit")

KEY_PREFIX = "paygate:gateway:rl"
DOWN_RETRY_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Limit:
    """One parsed limit string, with a stable name used in Redis keys."""

    name: str
    items: tuple[RateLimitItem, ...]

    @classmethod
    def parse(cls, name: str, notation: str) -> Limit:
        items = tuple(parse_many(notation))
        if not items:
            raise ValueError(f"empty rate limit {name!r}")
        return cls(name, items)

    @property
    def policy(self) -> str:
        return ", ".join(f"{i.amount};w={i.get_expiry()}" for i in self.items)


class _Window:
    __slots__ = (
        "expiry",
        "in_flight",
        "index",
        "pending",
        "redis_key",
        "redis_key_bytes",
        "synced",
    )

    def __init__(self, redis_key: str, index: int, expiry: int) -> None:
        self.redis_key = redis_key
        self.redis_key_bytes = redis_key.encode()
        self.index = index
        self.expiry = expiry
        self.synced = 0
        self.in_flight = 0
        self.pending = 0


class Decision:
    """The outcome of one check; `headers()` gives the `RateLimit-*` (and `Retry-After`) pairs."""

    __slots__ = ("allowed", "limit", "remaining", "reset_after")

    def __init__(self, allowed: bool, limit: int, remaining: int, reset_after: float) -> None:
        self.allowed = allowed
        self.limit = limit
        self.remaining = remaining
        self.reset_after = reset_after

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.reset_after))

    def headers(self) -> list[tuple[bytes, bytes]]:
        pairs = [
            (b"ratelimit-limit", b"%d" % self.limit),
            (b"ratelimit-remaining", b"%d" % self.remaining),
            (b"ratelimit-reset", b"%d" % max(0, math.ceil(self.reset_after))),
        ]
        if not self.allowed:
            pairs.append((b"retry-after", b"%d" % self.retry_after))
        return pairs


class RateLimiter:
    """Per-process admission with batched Redis synchronisation (see the module docstring)."""

    def __init__(self, redis_url: str, *, sync_ms: int = 5) -> None:
        # A raw RESP connection (gateway.resp): the sync is one write and a few reply lines.
        self._redis = RespClient(redis_url, timeout=0.5)
        self._interval = max(sync_ms, 1) / 1000.0
        self._windows: dict[str, _Window] = {}
        self._dirty: dict[str, _Window] = {}
        self._scheduled = False
        self._flush_task: asyncio.Task[None] | None = None
        self._closed = False
        self.redis_up = True
        self._last_prune = 0.0
        # Cached on first use: asyncio.get_running_loop() is a getpid() syscall in Python 3.11.
        self._loop: asyncio.AbstractEventLoop | None = None
        RATELIMIT_REDIS_UP.set(1)

    # --- hot path: no I/O -----------------------------------------------------------------

    def hit(self, limit: Limit, identity: str) -> Decision:
        """Count one request for `identity` under `limit` unless that would exceed it."""
        now = time.time()
        best: Decision | None = None
        windows: list[_Window] = []
        for item in limit.items:
            expiry = item.get_expiry()
            index = int(now // expiry)
            key = f"{limit.name}:{item.amount}/{expiry}:{identity}"
            window = self._windows.get(key)
            if window is None or window.index != index:
                window = _Window(f"{KEY_PREFIX}:{key}:{index}", index, expiry)
                self._windows[key] = window
            used = window.synced + window.in_flight + window.pending
            reset_after = (index + 1) * expiry - now
            if used >= item.amount:
                if not self.redis_up:
                    RATELIMIT_FALLBACK.inc()
                return Decision(False, item.amount, 0, reset_after)
            remaining = item.amount - used - 1
            if best is None or remaining < best.remaining:
                best = Decision(True, item.amount, remaining, reset_after)
            windows.append(window)
        for window in windows:
            window.pending += 1
            self._dirty[window.redis_key] = window
        if not self._scheduled and not self._closed:
            self._scheduled = True
            if self._loop is None:
                self._loop = asyncio.get_running_loop()
            self._loop.call_later(
                self._interval if self.redis_up else DOWN_RETRY_SECONDS, self._start_flush
            )
        if not self.redis_up:
            RATELIMIT_FALLBACK.inc()
        assert best is not None
        return best

    # --- background synchronisation -------------------------------------------------------

    def _start_flush(self) -> None:
        if self._closed:
            return
        assert self._loop is not None
        self._flush_task = self._loop.create_task(self._flush_and_reschedule())

    async def _flush_and_reschedule(self) -> None:
        try:
            await self.flush()
        finally:
            self._scheduled = False
            if self._dirty and not self._closed:
                self._scheduled = True
                assert self._loop is not None
                self._loop.call_later(
                    self._interval if self.redis_up else DOWN_RETRY_SECONDS, self._start_flush
                )

    async def flush(self) -> None:
        """Push pending counts to Redis and read back every replica's totals (one round trip)."""
        if not self._dirty:
            return
        now = time.time()
        batch = list(self._dirty.values())
        self._dirty = {}
        live: list[tuple[_Window, int]] = []
        commands: list[tuple[bytes, ...]] = []
        for window in batch:
            if (window.index + 1) * window.expiry <= now:
                continue  # that window is over; its count no longer matters to anyone
            n = window.pending
            window.pending = 0
            window.in_flight += n
            live.append((window, n))
            key = window.redis_key_bytes
            commands.append((b"INCRBY", key, b"%d" % n))
            # +1 s so a replica whose clock runs a little behind still finds the key
            commands.append((b"EXPIRE", key, b"%d" % (window.expiry + 1)))
        if not live:
            return
        try:
            results = await self._redis.execute(commands)
            totals = [int(results[2 * i][1:]) for i in range(len(live))]
        except (RespError, OSError, ValueError) as exc:
            for window, n in live:
                window.in_flight -= n
                window.pending += n
                self._dirty[window.redis_key] = window
            self._mark_down(exc)
            return
        for (window, n), total in zip(live, totals, strict=True):
            window.in_flight -= n
            window.synced = total
        self._mark_up()
        if now - self._last_prune > 10:
            self._prune(now)

    def _prune(self, now: float) -> None:
        self._last_prune = now
        for key in [k for k, w in self._windows.items() if (w.index + 1) * w.expiry <= now]:
            del self._windows[key]

    def _mark_down(self, exc: BaseException) -> None:
        if self.redis_up:
            log.warning(
                "rate-limit Redis unreachable (%s): enforcing limits per gateway process until "
                "it is back",
                type(exc).__name__,
            )
        self.redis_up = False
        RATELIMIT_REDIS_UP.set(0)

    def _mark_up(self) -> None:
        if not self.redis_up:
            log.warning("rate-limit Redis reachable again: limits are shared across replicas")
        self.redis_up = True
        RATELIMIT_REDIS_UP.set(1)

    async def ping(self) -> bool:
        try:
            await self._redis.execute([(b"PING",)])
        except (RespError, OSError):
            return False
        return True

    async def aclose(self) -> None:
        self._closed = True
        if self._flush_task is not None and not self._flush_task.done():
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._flush_task), 1.0)
        await self._redis.aclose()
