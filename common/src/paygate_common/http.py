"""Service-to-service HTTP: one httpx client per target with service tokens, request ids, retries."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from types import TracebackType
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from paygate_common.auth.service_tokens import issue_service_token
from paygate_common.errors import UpstreamError
from paygate_common.logging import REQUEST_ID_HEADER, current_request_id
from paygate_common.settings import ServiceSettings

log = logging.getLogger("paygate.http")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({502, 503, 504})
MAX_BACKOFF_SECONDS = 5.0
NEVER_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Renew the cached service token this long before it expires, so it never arrives stale.
TOKEN_RENEW_MARGIN_SECONDS = 10


class DependencyUnavailable(UpstreamError):
    """The target service could not be reached (or kept failing) after the retries."""

    status_code, code, title = 503, "dependency_unavailable", "A dependency is unavailable"


class UpstreamStatusError(UpstreamError):
    """The target answered with an error status; `upstream_status` tells which."""

    def __init__(self, target: str, response: httpx.Response) -> None:
        self.upstream_status = response.status_code
        self.response = response
        super().__init__(
            f"The {target} service answered {response.status_code}",
            upstream_status=response.status_code,
        )


AnswerT = TypeVar("AnswerT", bound=BaseModel)


def parse_answer(target: str, response: httpx.Response, model: type[AnswerT]) -> AnswerT:
    """A success answer as the serving service's `response_model` (`paygate_common.internal`).

    An error status raises `UpstreamStatusError`; a body the model refuses (the two services
    disagree on the schema) is `UpstreamError` (502), never a KeyError deep in the caller.
    """
    if response.is_error:
        raise UpstreamStatusError(target, response)
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        log.error(
            "%s answered outside %s: %s", target, model.__name__, exc.errors(include_input=False)
        )
        raise UpstreamError(
            f"The {target} service answered outside its {model.__name__} schema"
        ) from None


class ServiceClient:
    """Calls one other service: `ServiceClient(settings, target="user")`.

    Every request carries a service token for the target (`Authorization: Bearer`) and the
    current `X-Request-ID`. Idempotent requests (and any request sent with `retry=True`) are
    retried on connection errors, timeouts and 502/503/504 with exponential backoff and jitter;
    when the retries run out `DependencyUnavailable` is raised.
    """

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        target: str,
        timeout: float = 2.0,
        retries: int = 3,
        backoff: float = 0.2,
        base_url: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.target = target
        self.retries = max(0, retries)
        self.backoff = backoff
        self.base_url = (base_url or settings.service_url(target)).rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": f"paygate-{settings.service_name}"},
        )
        self._token: str | None = None
        self._token_renew_at = 0.0

    # --- service token -------------------------------------------------------------------------

    def service_token(self) -> str:
        now = time.time()
        if self._token is None or now >= self._token_renew_at:
            ttl = self.settings.service_token_ttl_seconds
            self._token = issue_service_token(
                self.settings, audience_service=self.target, now=int(now)
            )
            margin = min(TOKEN_RENEW_MARGIN_SECONDS, ttl / 2)
            self._token_renew_at = now + ttl - margin
        return self._token

    def _headers(self, extra: Any) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.service_token()}"}
        request_id = current_request_id()
        if request_id:
            headers[REQUEST_ID_HEADER] = request_id
        if extra:
            headers.update(dict(extra))
        return headers

    # --- requests ------------------------------------------------------------------------------

    def _delay(self, attempt: int) -> float:
        """Exponential backoff with full jitter: spreads the retries of many callers."""
        cap = min(MAX_BACKOFF_SECONDS, self.backoff * (2**attempt))
        return random.uniform(cap / 2, cap)

    async def request(
        self,
        method: str,
        path: str,
        *,
        retry: bool | None = None,
        headers: Any = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send a request; returns any response that is not a retried 502/503/504.

        `retry=None` retries idempotent methods only; pass `retry=True` for a POST that carries
        an `Idempotency-Key`.
        """
        method = method.upper()
        retryable = (method in IDEMPOTENT_METHODS) if retry is None else retry
        attempts = 1 + self.retries
        last_problem = ""
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(self._delay(attempt - 1))
            try:
                response = await self._client.request(
                    method, path, headers=self._headers(headers), **kwargs
                )
            except httpx.TransportError as exc:
                last_problem = type(exc).__name__
                # A request that never left (refused, connect timeout) is safe to resend for any
                # method; one that may have reached the target is resent only if idempotent.
                if not retryable and not isinstance(exc, NEVER_SENT_ERRORS):
                    break
                log.warning(
                    "%s %s %s failed (attempt %d/%d): %s",
                    self.target,
                    method,
                    path,
                    attempt + 1,
                    attempts,
                    last_problem,
                )
                continue
            if response.status_code in RETRY_STATUSES and retryable:
                last_problem = f"HTTP {response.status_code}"
                log.warning(
                    "%s %s %s answered %d (attempt %d/%d)",
                    self.target,
                    method,
                    path,
                    response.status_code,
                    attempt + 1,
                    attempts,
                )
                await response.aclose()
                continue
            return response
        log.error(
            "%s %s %s gave up after %d attempts: %s",
            self.target,
            method,
            path,
            attempts,
            last_problem,
        )
        raise DependencyUnavailable(
            f"The {self.target} service is unavailable", dependency=self.target
        )

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", path, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PUT", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("DELETE", path, **kwargs)

    async def _json(self, response: httpx.Response) -> Any:
        if response.is_error:
            raise UpstreamStatusError(self.target, response)
        try:
            return response.json()
        except ValueError:
            raise UpstreamError(f"The {self.target} service answered with invalid JSON") from None

    async def get_json(self, path: str, **kwargs: Any) -> Any:
        """GET and decode JSON; a 4xx/5xx answer raises `UpstreamStatusError` (`.upstream_status`)."""
        return await self._json(await self.request("GET", path, **kwargs))

    async def post_json(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return await self._json(await self.request("POST", path, json=json, **kwargs))

    async def call_as(self, model: type[AnswerT], method: str, path: str, **kwargs: Any) -> AnswerT:
        """Send a request and read the answer as `model` (`parse_answer`: typed, or an error)."""
        return parse_answer(self.target, await self.request(method, path, **kwargs), model)

    # --- lifecycle -----------------------------------------------------------------------------

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> ServiceClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
