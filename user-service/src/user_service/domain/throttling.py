"""Sign-in throttling in Redis: failures counted per account and per client IP, fixed windows.

Counters live in Redis, so every replica sees the same numbers (no per-process limits). Each
counter is a key that expires at the end of its window: `SET key 0 EX window NX` then `INCR`
in one MULTI, which works on Redis 6.2 (no `EXPIRE ... NX`) and never leaves a key without TTL.
"""

from __future__ import annotations

import hashlib

from redis.asyncio import Redis

from user_service.domain.errors import TooManyAttempts

KEY_PREFIX = "user-service:signin-failures"


def _account_key(email: str) -> str:
    # Hashed so Redis (and whoever can run KEYS on it) does not hold a list of emails.
    digest = hashlib.sha256(email.encode()).hexdigest()[:32]
    return f"{KEY_PREFIX}:account:{digest}"


def _ip_key(client_ip: str) -> str:
    return f"{KEY_PREFIX}:ip:{client_ip}"


class SigninThrottle:
    def __init__(
        self,
        redis: Redis,
        *,
        max_failures_per_account: int,
        max_failures_per_ip: int,
        window_seconds: int,
    ) -> None:
        self.redis = redis
        self.max_per_account = max_failures_per_account
        self.max_per_ip = max_failures_per_ip
        self.window_seconds = window_seconds

    async def ensure_allowed(self, *, email: str, client_ip: str) -> None:
        """Raise `TooManyAttempts` (429 + Retry-After) when either counter is at its limit."""
        account, ip = _account_key(email), _ip_key(client_ip)
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in (account, ip):
                pipe.get(key)
                pipe.ttl(key)
            account_count, account_ttl, ip_count, ip_ttl = await pipe.execute()
        retry_after = 0
        if int(account_count or 0) >= self.max_per_account:
            retry_after = max(retry_after, account_ttl)
        if int(ip_count or 0) >= self.max_per_ip:
            retry_after = max(retry_after, ip_ttl)
        if retry_after:
            # TTL is -1/-2 only for a key that vanished between the calls: ask for a short wait.
            raise TooManyAttempts(
                retry_after=retry_after if retry_after > 0 else 1,
                detail="Too many failed sign-in attempts; try again later",
            )

    async def record_failure(self, *, email: str, client_ip: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            for key in (_account_key(email), _ip_key(client_ip)):
                pipe.set(key, 0, ex=self.window_seconds, nx=True)
                pipe.incr(key)
            await pipe.execute()

    async def record_success(self, *, email: str) -> None:
        """A correct password clears the account's counter; the IP's keeps counting."""
        await self.redis.delete(_account_key(email))
