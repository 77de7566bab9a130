"""A cache of the user-service's public keys by `kid`, fetched from its JWKS endpoint."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import httpx
import jwt

from paygate_common.auth.errors import JWKSUnavailable, TokenInvalid
from paygate_common.auth.keys import ACCESS_TOKEN_ALGORITHM, SigningKey

log = logging.getLogger("paygate.auth.jwks")

DEFAULT_TTL_SECONDS = 300.0
# A flood of tokens with made-up kids must not turn into a flood of requests to user-service.
DEFAULT_MIN_REFETCH_INTERVAL = 5.0
DEFAULT_FETCH_TIMEOUT = 2.0


def _to_pyjwk(jwk: Mapping[str, Any], allowed: tuple[str, ...]) -> jwt.PyJWK | None:
    """A verification key bound to its algorithm, or None for keys we do not verify with."""
    if jwk.get("kty") != "RSA" or not jwk.get("kid"):
        return None
    if jwk.get("use", "sig") != "sig" or "d" in jwk:
        return None
    alg = jwk.get("alg", ACCESS_TOKEN_ALGORITHM)
    if alg not in allowed:
        return None
    try:
        return jwt.PyJWK(dict(jwk), algorithm=alg)
    except jwt.PyJWTError:
        return None


class JWKSCache:
    """Public keys by `kid`: fetched over HTTP (when given a URL) and/or added statically.

    - Keys are refetched after `ttl_seconds` so a key user-service stopped publishing ages out.
    - An unknown kid triggers one refetch (concurrent callers share it), but at most one every
      `min_refetch_interval` seconds.
    - If a refetch fails, the keys already known keep working.
    """

    def __init__(
        self,
        jwks_url: str | None = None,
        *,
        http_client: httpx.AsyncClient | None = None,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        min_refetch_interval: float = DEFAULT_MIN_REFETCH_INTERVAL,
        timeout: float = DEFAULT_FETCH_TIMEOUT,
        algorithms: Iterable[str] = (ACCESS_TOKEN_ALGORITHM,),
    ) -> None:
        self.jwks_url = jwks_url
        self.ttl_seconds = ttl_seconds
        self.min_refetch_interval = min_refetch_interval
        self.algorithms = tuple(algorithms)
        self._timeout = timeout
        self._client = http_client
        self._owns_client = http_client is None
        self._static: dict[str, jwt.PyJWK] = {}
        self._fetched: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last attempt, successful or not
        self._lock = asyncio.Lock()
        self.fetch_count = 0

    # --- construction helpers ----------------------------------------------------------------

    @classmethod
    def from_jwks(cls, jwks: Mapping[str, Any], **kwargs: Any) -> JWKSCache:
        """A cache that never fetches: for tests, and for user-service verifying its own tokens."""
        cache = cls(None, **kwargs)
        cache.add_jwks(jwks)
        return cache

    @classmethod
    def from_signing_keys(cls, keys: Iterable[SigningKey], **kwargs: Any) -> JWKSCache:
        cache = cls(None, **kwargs)
        for key in keys:
            cache.add_jwk(key.public_jwk())
        return cache

    def add_jwk(self, jwk: Mapping[str, Any]) -> None:
        key = _to_pyjwk(jwk, self.algorithms)
        if key is None:
            raise ValueError("not an RSA signature key with a kid and an allowed alg")
        self._static[str(jwk["kid"])] = key

    def add_jwks(self, jwks: Mapping[str, Any]) -> None:
        for jwk in jwks.get("keys", []):
            self.add_jwk(jwk)

    @property
    def kids(self) -> set[str]:
        return set(self._static) | set(self._fetched)

    # --- lookups ---------------------------------------------------------------------------------

    def _lookup(self, kid: str) -> jwt.PyJWK | None:
        return self._static.get(kid) or self._fetched.get(kid)

    def get_key_nowait(self, kid: str) -> jwt.PyJWK | None:
        """The key if it is cached and fresh enough; never does I/O (the gateway's hot path)."""
        if self._stale():
            return self._static.get(kid)
        return self._lookup(kid)

    def _stale(self) -> bool:
        if self.jwks_url is None:
            return False
        return self._fetched_at is None or time.monotonic() - self._fetched_at > self.ttl_seconds

    def _may_fetch(self) -> bool:
        if self.jwks_url is None:
            return False
        return (
            self._attempted_at is None
            or time.monotonic() - self._attempted_at >= self.min_refetch_interval
        )

    async def get_key(self, kid: str) -> jwt.PyJWK:
        """The verification key for `kid`; raises `TokenInvalid` for a kid nobody publishes."""
        if not self._stale():
            key = self._lookup(kid)
            if key is not None:
                return key
        async with self._lock:
            # Another caller may have refreshed while we waited for the lock.
            stale = self._stale()
            key = self._lookup(kid)
            if (key is None or stale) and self._may_fetch():
                await self._refresh()
                key = self._lookup(kid)
        if key is not None:
            return key
        if not self.kids and self.jwks_url is not None:
            raise JWKSUnavailable("Token verification keys could not be fetched")
        raise TokenInvalid("The token was signed with an unknown key")

    async def refresh(self) -> None:
        """Fetch the key set now (for example at startup, to warm the cache)."""
        async with self._lock:
            await self._refresh()

    async def _refresh(self) -> None:
        assert self.jwks_url is not None
        self._attempted_at = time.monotonic()
        self.fetch_count += 1
        try:
            client = self._http()
            response = await client.get(self.jwks_url, timeout=self._timeout)
            response.raise_for_status()
            doc = response.json()
            keys = {}
            for jwk in doc.get("keys", []):
                key = _to_pyjwk(jwk, self.algorithms)
                if key is not None:
                    keys[str(jwk["kid"])] = key
        except (httpx.HTTPError, ValueError, AttributeError, TypeError) as exc:
            # Keep serving the keys we have: user-service being down must not log everyone out.
            log.warning("JWKS fetch from %s failed: %s", self.jwks_url, type(exc).__name__)
            return
        self._fetched = keys
        self._fetched_at = time.monotonic()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout)
        return self._client

    async def aclose(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None
