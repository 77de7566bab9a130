"""API keys at the edge: `Bearer pgk_…` becomes its owner's short-lived access token, cached seconds.

Upstream services verify JWTs themselves, so the gateway does not invent a new identity format:
it asks user-service (`POST /internal/api-keys/resolve`, with a service token) for an access
token of the key's owner (60 s, carrying `api_key_id` and the key's `scope`), verifies it like
any other token, and forwards it in place of the key. The key itself never leaves the gateway.

Caching, so a cached key costs what a cached JWT costs (one dict lookup):
- an answer is kept `api_key_cache_seconds` (≤ 5 s, and never past the token's expiry); a
  refusal (revoked, unknown, disabled owner) is kept as long, so a revoked key hammered by a
  leaked client costs user-service nothing;
- from `api_key_refresh_ahead_seconds` before it goes stale, the next request starts one
  background re-resolve while it is still served from the cache: busy keys never wait, and a
  revocation is seen within the cache time;
- concurrent misses of one key share one resolve call.
A key whose format or checksum is wrong (a typo, a JWT with a key prefix) is refused without a
call. If user-service cannot be reached once an answer has gone stale the key is refused with
503: the gateway fails closed rather than honour a key that may have been revoked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from prometheus_client import Counter
from pydantic import ValidationError

from gateway.settings import GatewaySettings
from paygate_common.auth import (
    JWKSCache,
    Principal,
    key_environment,
    parse_api_key,
    scopes_allow,
    token_kid,
    verify_with_key,
)
from paygate_common.errors import Forbidden, PaygateError, ServiceUnavailable, Unauthorized
from paygate_common.http import ServiceClient
from paygate_common.internal.users import API_KEY_RESOLVE_PATH, ApiKeyResolved, ApiKeyResolveRequest

log = logging.getLogger("paygate.gateway.apikeys")

# Never cache a resolved token this close to its expiry: it must still be valid upstream.
EXPIRY_MARGIN_SECONDS = 5.0
_API_PREFIX_LENGTH = len("/api/v1/")

# Rare (one per key per few seconds per process), so an ordinary prometheus_client counter.
API_KEY_RESOLVES = Counter(
    "paygate_gateway_api_key_resolves_total",
    "API key resolve calls to user-service, by outcome (accepted, refused, unavailable)",
    ["outcome"],
)


class ApiKeyInvalid(Unauthorized):
    code, title = "api_key_invalid", "The API key is not valid"


class InsufficientScope(Forbidden):
    code, title = "insufficient_scope", "The API key's scopes do not allow this request"


class ApiKeysUnavailable(ServiceUnavailable):
    code, title = "api_key_resolution_unavailable", "API keys cannot be checked right now"


@dataclass(slots=True)
class _Answer:
    principal: Principal | None  # None: user-service refused the key
    authorization: bytes  # the header line forwarded in place of the key
    fresh_until: float  # time.monotonic()
    refresh_after: float


def path_segment(path: str) -> str:
    """`payments` for `/api/v1/payments/pay_1`: what a key's scopes are written against."""
    return path[_API_PREFIX_LENGTH:].split("/", 1)[0]


def check_scopes(principal: Principal, method: str, path: str) -> None:
    """403 `insufficient_scope` when a scoped token may not make this request."""
    if principal.scopes is not None and not scopes_allow(
        principal.scopes, path_segment(path), method
    ):
        raise InsufficientScope(
            f"This API key needs the {path_segment(path)}:"
            f"{'read' if method in ('GET', 'HEAD', 'OPTIONS') else 'write'} scope"
        )


class ApiKeyAuthenticator:
    """Resolves API keys through user-service and caches the answers for a few seconds."""

    def __init__(
        self,
        settings: GatewaySettings,
        jwks: JWKSCache,
        *,
        client: ServiceClient | None = None,
    ) -> None:
        self.settings = settings
        self.jwks = jwks
        self.environment = key_environment(settings.environment)
        self.ttl = settings.api_key_cache_seconds
        self.refresh_ahead = min(settings.api_key_refresh_ahead_seconds, self.ttl / 2)
        self.max_entries = settings.api_key_cache_size
        self._client = client or ServiceClient(
            settings,
            target="user",
            timeout=settings.api_key_resolve_timeout_seconds,
            retries=1,
            backoff=0.05,
        )
        self._answers: dict[str, _Answer] = {}
        self._inflight: dict[str, asyncio.Task[_Answer]] = {}
        self.resolve_count = 0  # calls made to user-service (tests and metrics read it)

    def cached(self, token: str) -> tuple[Principal, bytes] | None:
        """The cached answer without a coroutine (the hot path, like `VerifiedTokenCache.get`);
        None when the key must be resolved first (`authenticate`)."""
        answer = self._answers.get(token)
        if answer is None:
            return None
        now = time.monotonic()
        if now >= answer.fresh_until:
            return None
        if now >= answer.refresh_after:
            # Served from the cache meanwhile; the fresh answer replaces it.
            self._start_resolve(token)
        if answer.principal is None:
            raise ApiKeyInvalid("The API key is not valid")
        return answer.principal, answer.authorization

    async def authenticate(self, token: str) -> tuple[Principal, bytes]:
        """The key's principal and the `authorization` header line to forward instead of it."""
        hit = self.cached(token)
        if hit is not None:
            return hit
        parsed = parse_api_key(token)
        if parsed is None or parsed.environment != self.environment:
            raise ApiKeyInvalid("The API key is not valid")
        answer = await self._resolve_shared(token)
        if answer.principal is None:
            raise ApiKeyInvalid("The API key is not valid")
        return answer.principal, answer.authorization

    # --- resolving ----------------------------------------------------------------------------

    def _start_resolve(self, token: str) -> asyncio.Task[_Answer]:
        """The resolve of `token` in flight, started if there is none.

        It runs as a task of its own, so a client that hangs up does not cancel the answer
        other requests for the same key are waiting for.
        """
        task = self._inflight.get(token)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._resolve_and_remember(token))
            self._inflight[token] = task

            def done(finished: asyncio.Task[_Answer]) -> None:
                self._inflight.pop(token, None)
                if not finished.cancelled() and finished.exception() is not None:
                    # Retrieved here, so a background refresh nobody awaits does not warn.
                    log.warning("API key resolve failed: %s", type(finished.exception()).__name__)

            task.add_done_callback(done)
        return task

    async def _resolve_shared(self, token: str) -> _Answer:
        return await asyncio.shield(self._start_resolve(token))

    async def _resolve_and_remember(self, token: str) -> _Answer:
        answer = await self._resolve(token)
        self._remember(token, answer)
        return answer

    def _remember(self, token: str, answer: _Answer) -> None:
        if token not in self._answers and len(self._answers) >= self.max_entries:
            # Evict the oldest insertion; a busy key is re-inserted on its next resolve.
            self._answers.pop(next(iter(self._answers)))
        self._answers.pop(token, None)
        self._answers[token] = answer

    def _answer(
        self, principal: Principal | None, authorization: bytes, ttl: float, asked_at: float
    ) -> _Answer:
        # Counted from when the question was sent, not when the answer came: user-service read
        # the key after `asked_at`, so serving it until `asked_at + ttl` keeps any revocation
        # visible within `ttl` however slow the call was.
        ttl = max(0.0, ttl)
        return _Answer(
            principal, authorization, asked_at + ttl, asked_at + ttl - self.refresh_ahead
        )

    async def _resolve(self, token: str) -> _Answer:
        self.resolve_count += 1
        asked_at = time.monotonic()
        try:
            response = await self._client.request(
                "POST",
                API_KEY_RESOLVE_PATH,
                json=ApiKeyResolveRequest(key=token).model_dump(),
                retry=True,
            )
        except PaygateError:
            API_KEY_RESOLVES.labels("unavailable").inc()
            raise ApiKeysUnavailable("API keys cannot be checked right now; retry") from None
        if response.status_code == 401:
            API_KEY_RESOLVES.labels("refused").inc()
            return self._answer(None, b"", self.ttl, asked_at)
        if response.status_code != 200:
            API_KEY_RESOLVES.labels("unavailable").inc()
            log.error("API key resolve answered %d", response.status_code)
            raise ApiKeysUnavailable("API keys cannot be checked right now; retry")
        try:
            access_token = ApiKeyResolved.model_validate_json(response.content).access_token
        except ValidationError:
            log.error("API key resolve answered outside ApiKeyResolved")
            raise ApiKeysUnavailable("API keys cannot be checked right now; retry") from None
        # Verified like any token (defence in depth: only user-service's keys sign these).
        kid = token_kid(access_token)
        key = self.jwks.get_key_nowait(kid) or await self.jwks.get_key(kid)
        principal = verify_with_key(
            access_token,
            key,
            issuer=self.settings.jwt_issuer,
            audience=self.settings.jwt_audience,
        )
        if principal.api_key_id is None:
            raise ApiKeysUnavailable("user-service answered with a token that is not a key's")
        API_KEY_RESOLVES.labels("accepted").inc()
        ttl = min(self.ttl, principal.token_expires_at - time.time() - EXPIRY_MARGIN_SECONDS)
        line = b"authorization: Bearer " + access_token.encode("ascii") + b"\r\n"
        return self._answer(principal, line, ttl, asked_at)

    def clear(self) -> None:
        self._answers.clear()

    async def aclose(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        await self._client.aclose()
