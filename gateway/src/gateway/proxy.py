"""The hot path: a raw ASGI reverse proxy over one keep-alive pool per upstream (client.py).

No framework routing, no Request objects, headers as raw bytes: FACTS.md measured a FastAPI +
httpx proxy at ~5% of nginx's throughput, and every microsecond here is paid by every call in
the suite. The upstream request is written as one bytes object and a complete upstream response
is relayed as one ASGI start + one body message (one socket write with `gateway.server`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections.abc import AsyncIterator
from typing import Protocol

from starlette.types import Receive, Scope, Send

from gateway.apikeys import ApiKeyAuthenticator, check_scopes
from gateway.balancer import Balancer, Instance
from gateway.breaker import CircuitBreaker
from gateway.metrics import RATE_LIMITED, UPSTREAM_ERRORS, RequestCounter, upstream_latency
from gateway.ratelimit import Decision, Limit, RateLimiter
from gateway.routes import Route, RouteTable, is_safe_path
from gateway.settings import GatewaySettings
from paygate_common.auth import (
    JWKSCache,
    Principal,
    VerifiedTokenCache,
    token_kid,
    verify_with_key,
)
from paygate_common.auth.errors import TokenMissing
from paygate_common.errors import PROBLEM_CONTENT_TYPE, PaygateError, problem_body
from paygate_common.http_client import (
    BrokenResponse,
    ConnectFailed,
    Disconnected,
    UpstreamPool,
    UpstreamResponse,
)
from paygate_common.logging import accept_request_id, request_id_var
from paygate_common.request_guard import duplicate_header, refuses_charset, unsupported_charset

log = logging.getLogger("paygate.gateway.proxy")

# RFC 9110 §7.6.1 hop-by-hop headers, plus what the gateway itself sets for the upstream.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Dropped from the request: recomputed by the client or replaced by the gateway (`expect`: the
# body is sent at once, an upstream's 100 Continue would only cost a round trip). The identity
# headers are dropped so no upstream could ever be fooled by one a client made up.
_REQUEST_DROP = HOP_BY_HOP | {
    b"host",
    b"content-length",
    b"expect",
    b"x-request-id",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"x-forwarded-prefix",
    b"x-real-ip",
    b"forwarded",
    b"x-user-id",
    b"x-user-role",
    b"x-authenticated-user",
}
# uvicorn writes its own `date` and `server`; the upstream's would be duplicates.
_RESPONSE_DROP = HOP_BY_HOP | {b"x-request-id", b"date", b"server"}
# Forwarded headers that must come at most once (`host` and `content-length` are in the drop set
# and checked there): a second Authorization would be verified here and another used upstream.
_FORWARDED_SINGLE = frozenset({b"authorization", b"idempotency-key", b"content-type"})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_JSON_HEADERS = [(b"content-type", PROBLEM_CONTENT_TYPE.encode())]
_NO_BODY_STATUSES = frozenset({204, 304})


# Request ids: a random per-process prefix plus a counter. uuid4() reads os.urandom per call
# (a syscall, ~3% of the hot path in the profile); this is as unique and far cheaper.
_RID_PREFIX = secrets.token_hex(8)
_rid_counter = itertools.count(1)


def new_request_id() -> str:
    return f"{_RID_PREFIX}{next(_rid_counter):016x}"


class _BodyTooLarge(Exception):
    pass


class _ClientGone(Exception):
    """The client disconnected while its body was being forwarded."""


class Exchange(Protocol):
    """The client side of one proxied request: its body in, the answer out.

    `AsgiExchange` speaks ASGI (any server); `gateway.server` implements it directly on the
    connection so `/api/*` skips the ASGI scope/receive/send cycle. Headers are lowercase pairs.
    """

    async def read(self) -> tuple[bytes, bool] | None:
        """The next body piece and whether more follows; None when the client went away."""

    async def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """A whole answer at once."""

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        """The head of a streamed answer; `write` the body pieces, then `end`."""

    async def write(self, chunk: bytes) -> None: ...

    async def end(self) -> None: ...


class AsgiExchange:
    """`Exchange` over ASGI receive/send; `extra_headers` go on every answer (HSTS on HTTPS)."""

    __slots__ = ("_extra", "_receive", "_send")

    def __init__(
        self, receive: Receive, send: Send, extra_headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        self._receive = receive
        self._send = send
        self._extra = extra_headers

    async def read(self) -> tuple[bytes, bool] | None:
        message = await self._receive()
        if message["type"] == "http.disconnect":
            return None
        return message.get("body", b""), message.get("more_body", False)

    async def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        if self._extra:
            headers = headers + self._extra
        await self._send({"type": "http.response.start", "status": status, "headers": headers})
        await self._send({"type": "http.response.body", "body": body})

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        if self._extra:
            headers = headers + self._extra
        await self._send({"type": "http.response.start", "status": status, "headers": headers})

    async def write(self, chunk: bytes) -> None:
        await self._send({"type": "http.response.body", "body": chunk, "more_body": True})

    async def end(self) -> None:
        await self._send({"type": "http.response.body", "body": b""})


class Proxy:
    """Everything under `/api/`: match, check, limit, forward."""

    def __init__(
        self,
        settings: GatewaySettings,
        table: RouteTable,
        *,
        breakers: dict[str, CircuitBreaker],
        limiter: RateLimiter | None,
        jwks: JWKSCache | None,
        api_keys: ApiKeyAuthenticator | None = None,
    ) -> None:
        self.settings = settings
        self.table = table
        self.breakers = breakers
        self.limiter = limiter
        self.jwks = jwks
        self.api_keys = api_keys
        self.tokens = VerifiedTokenCache(settings.verified_token_cache_size)
        self._user_keys: dict[int, tuple[Principal, str]] = {}
        self.balancers: dict[str, Balancer] = {}
        # every instance of each upstream service (one unless GATEWAY_<SERVICE>_URLS lists more)
        self.instance_urls = {name: settings.instance_urls(name) for name in table.services}
        self.max_body = settings.max_body_bytes
        # Strict-Transport-Security for answers to HTTPS requests (both serving paths add it)
        self.hsts: bytes | None = (
            b"max-age=%d; includeSubDomains" % settings.hsts_max_age_seconds
            if settings.hsts_max_age_seconds > 0
            else None
        )
        self._hsts_headers = [(b"strict-transport-security", self.hsts)] if self.hsts else None
        self.counter = RequestCounter()
        self._latency = {name: upstream_latency(name) for name in table.services}
        self._timeouts = {
            route.prefix: route.timeout or settings.upstream_timeout_seconds
            for route in table.routes
        }
        self.anon_limit = Limit.parse("anon", settings.rate_limit_anon)
        self.user_limit = Limit.parse("user", settings.rate_limit_user)
        self.route_limits: dict[str, Limit] = {}
        for route in table.routes:
            if route.limit:
                notation = getattr(settings, route.limit)
                self.route_limits[route.prefix] = Limit.parse(route.limit, notation)

    async def start(self) -> None:
        settings = self.settings

        def pool(url: str) -> UpstreamPool:
            return UpstreamPool(
                url,
                limit=settings.upstream_pool_size,
                keepalive_seconds=settings.upstream_keepalive_seconds,
                connect_timeout=settings.upstream_connect_timeout_seconds,
            )

        clock = asyncio.get_running_loop().time
        for name in self.table.services:
            self.balancers[name] = Balancer(
                name,
                self.instance_urls[name],
                pool=pool,
                eject_after=settings.upstream_eject_after_failures,
                eject_seconds=settings.upstream_eject_seconds,
                eject_max_seconds=settings.upstream_eject_max_seconds,
                clock=clock,
            )

    async def aclose(self) -> None:
        for balancer in self.balancers.values():
            for inst in balancer.instances:
                await inst.pool.aclose()
        self.balancers.clear()

    # --- the request ----------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry (any ASGI server; `gateway.server` serves `/api/*` via `handle`)."""
        client = scope.get("client")
        path: str = scope["path"]
        https = scope.get("scheme") == "https"
        await self.handle(
            AsgiExchange(receive, send, self._hsts_headers if https else None),
            scope["method"],
            path,
            scope.get("raw_path") or path.encode(),
            scope.get("query_string", b""),
            scope["headers"],
            client[0] if client else None,
            scope.get("scheme", "http"),
        )

    async def handle(
        self,
        ex: Exchange,
        method: str,
        path: str,
        raw_path: bytes,
        query: bytes,
        headers: list[tuple[bytes, bytes]],
        client_host: str | None,
        scheme: str,
    ) -> None:
        """One proxied request, whoever parsed it: `ex` reads its body and writes the answer."""
        request_id: str | None = None
        authorization: bytes | None = None
        content_type: bytes | None = None
        idempotency_key = False
        duplicate: bytes | None = None  # the first single-valued header seen twice
        content_length = -1
        host: bytes | None = None
        forwarded_for = b""
        # The forwarded headers as finished `name: value\r\n` lines: the upstream request is
        # written as one bytes object, so there is no reason to build pairs or a dict.
        fwd: list[bytes] = []
        connection_tokens: frozenset[bytes] = frozenset()
        for name, value in headers:
            if name in _REQUEST_DROP:
                if name == b"x-request-id":
                    request_id = accept_request_id(value)
                elif name == b"host":
                    if host is not None:
                        duplicate = duplicate or name
                    host = value
                elif name == b"content-length":
                    if content_length != -1:
                        duplicate = duplicate or name
                    try:
                        content_length = int(value)
                    except ValueError:
                        content_length = -2
                elif name == b"x-forwarded-for":
                    forwarded_for = value
                elif name == b"connection":
                    connection_tokens = frozenset(
                        t.strip().lower() for t in value.split(b",") if t.strip()
                    )
                continue
            if name in _FORWARDED_SINGLE:
                if name == b"authorization":
                    if authorization is not None:
                        duplicate = duplicate or name
                    authorization = value
                    continue  # forwarded by `_handle`: as is, or the key's resolved token
                elif name == b"content-type":
                    if content_type is not None:
                        duplicate = duplicate or name
                    content_type = value
                else:
                    if idempotency_key:
                        duplicate = duplicate or name
                    idempotency_key = True
            fwd.append(name + b": " + value + b"\r\n")
        if request_id is None:
            request_id = new_request_id()
        rid_token = request_id_var.set(request_id)
        rid_bytes = request_id.encode()
        try:
            await self._handle(
                ex,
                method,
                path,
                raw_path,
                query,
                client_host,
                scheme,
                rid_bytes,
                authorization,
                content_length,
                host or b"",
                forwarded_for,
                fwd,
                connection_tokens,
                duplicate,
                content_type,
                idempotency_key,
            )
        finally:
            request_id_var.reset(rid_token)

    async def _handle(
        self,
        ex: Exchange,
        method: str,
        path: str,
        raw_path: bytes,
        query: bytes,
        client_host: str | None,
        scheme: str,
        rid_bytes: bytes,
        authorization: bytes | None,
        content_length: int,
        host: bytes,
        forwarded_for: bytes,
        fwd: list[bytes],
        connection_tokens: frozenset[bytes],
        duplicate: bytes | None,
        content_type: bytes | None,
        idempotency_key: bool,
    ) -> None:
        route = self.table.match(path)
        if route is None:
            await self._problem(ex, rid_bytes, "unmatched", 404, "not_found", "No such route")
            return
        if not is_safe_path(path, raw_path) or not raw_path.startswith(route.prefix_bytes):
            await self._problem(
                ex, rid_bytes, route.prefix, 400, "invalid_path", "The path is not allowed"
            )
            return
        # Ambiguous requests never reach authentication, the limiter or a service.
        if duplicate is not None or (content_type is not None and refuses_charset(content_type)):
            status, code, detail = (
                duplicate_header(duplicate) if duplicate is not None else unsupported_charset()
            )
            await self._problem(ex, rid_bytes, route.prefix, status, code, detail)
            return

        if forwarded_for and self.settings.trust_forwarded_for:
            client_ip = forwarded_for.split(b",", 1)[0].strip().decode("latin-1")
        else:
            client_ip = client_host or "unknown"
        principal: Principal | None = None
        if not route.public and self.jwks is not None:
            try:
                principal, key_token = await self._authenticate(authorization, method, path)
                # an API key: upstreams get its owner's access token instead (one append either
                # way, so a cached key costs what a cached JWT does)
                fwd.append(key_token or b"authorization: " + authorization + b"\r\n")  # type: ignore[operator]
            except PaygateError as exc:
                # Count failed attempts against the caller's IP so token guessing is limited.
                if self.limiter is not None:
                    refused = self.limiter.hit(self.anon_limit, client_ip)
                    if not refused.allowed:
                        await self._too_many(ex, rid_bytes, route, refused)
                        return
                await self._error(ex, rid_bytes, route.prefix, exc)
                return
        elif authorization is not None and authorization[7:11] != b"pgk_":
            # A route that does not authenticate never receives a key either.
            fwd.append(b"authorization: " + authorization + b"\r\n")

        decision: Decision | None = None
        if self.limiter is not None:
            route_limit = self.route_limits.get(route.prefix)
            if route_limit is not None:
                decision = self.limiter.hit(route_limit, client_ip)
            elif principal is not None:
                decision = self.limiter.hit(self.user_limit, self._user_key(principal))
            else:
                decision = self.limiter.hit(self.anon_limit, client_ip)
            if not decision.allowed:
                await self._too_many(ex, rid_bytes, route, decision)
                return

        if content_length > self.max_body or content_length == -2:
            status, code = (
                (413, "payload_too_large") if content_length > 0 else (400, "bad_request")
            )
            await self._problem(ex, rid_bytes, route.prefix, status, code, None)
            return

        breaker = self.breakers[route.service]
        if not breaker.allow():
            await self._problem(
                ex,
                rid_bytes,
                route.prefix,
                503,
                "upstream_unavailable",
                f"The {route.service} service is failing; try again later",
                extra_headers=[(b"retry-after", str(breaker.retry_after()).encode())],
            )
            return

        # Headers the upstream needs from the gateway.
        if connection_tokens:
            fwd = [line for line in fwd if line.split(b":", 1)[0] not in connection_tokens]
        if forwarded_for and self.settings.trust_forwarded_for:
            xff = forwarded_for + b", " + client_ip.encode("latin-1")
        else:
            xff = client_ip.encode("latin-1")
        fwd.append(
            b"x-request-id: %s\r\nx-forwarded-for: %s\r\nx-forwarded-proto: %s\r\n"
            % (rid_bytes, xff, b"https" if scheme == "https" else b"http")
        )
        if host:
            fwd.append(b"x-forwarded-host: " + host + b"\r\n")
        if route.web:
            fwd.append(b"x-forwarded-prefix: " + route.prefix_bytes + b"\r\n")

        target = route.upstream_bytes + raw_path[len(route.prefix_bytes) :]
        if query:
            target = target + b"?" + query

        await self._forward(
            ex,
            method,
            route,
            breaker,
            target,
            b"".join(fwd),
            rid_bytes,
            decision,
            idempotency_key,
        )

    async def _forward(
        self,
        ex: Exchange,
        method: str,
        route: Route,
        breaker: CircuitBreaker,
        target: bytes,
        header_block: bytes,
        rid_bytes: bytes,
        decision: Decision | None,
        idempotency_key: bool,
    ) -> None:
        first = await ex.read()
        if first is None:  # the client went away before its body was complete: send nothing
            return
        body, more_body = first
        data: bytes | AsyncIterator[bytes] = body
        too_large = False
        streamed = False
        if more_body:
            streamed = True
            if len(body) > self.max_body:
                await self._problem(ex, rid_bytes, route.prefix, 413, "payload_too_large", None)
                return

            async def stream(first: bytes) -> AsyncIterator[bytes]:
                nonlocal too_large
                size = len(first)
                yield first
                while True:
                    msg = await ex.read()
                    if msg is None:
                        raise _ClientGone
                    chunk, more = msg
                    size += len(chunk)
                    if size > self.max_body:
                        too_large = True
                        raise _BodyTooLarge
                    if chunk:
                        yield chunk
                    if not more:
                        return

            data = stream(body)

        balancer = self.balancers[route.service]
        timeout = self._timeouts[route.prefix]
        # Sending again after bytes went out is safe only when the upstream dedupes or the
        # method is idempotent, and only with the body still in hand. A refused connection sent
        # nothing at all: any request moves on to the next instance (Envoy's connect-failure).
        may_resend = (method in IDEMPOTENT or idempotency_key) and not streamed
        n = len(balancer.instances)
        attempts = min(n, 3) + (1 if may_resend else 0) if n > 1 else (2 if may_resend else 1)
        tried: tuple[Instance, ...] = ()
        started = time.perf_counter()
        for attempt in range(attempts):
            inst = balancer.pick(tried)
            tried = (*tried, inst)
            inst.outstanding += 1
            retryable = may_resend
            try:
                resp = await inst.pool.request(
                    method, target, header_block, data, total_seconds=timeout
                )
            except ConnectFailed as exc:
                retryable = True
                kind, status, code = "connect", 502, "upstream_unreachable"
                detail = (
                    f"The {route.service} service did not accept the connection"
                    if exc.timed_out
                    else f"The {route.service} service is unreachable"
                )
            except TimeoutError:
                inst.outstanding -= 1
                balancer.failure(inst)
                breaker.record_failure()
                UPSTREAM_ERRORS.labels(route.service, "timeout").inc()
                await self._problem(
                    ex,
                    rid_bytes,
                    route.prefix,
                    504,
                    "upstream_timeout",
                    f"The {route.service} service did not answer in time",
                )
                return
            except (Disconnected, _BodyTooLarge):
                if too_large:
                    inst.outstanding -= 1
                    balancer.release(inst)
                    breaker.release_probe()
                    await self._problem(ex, rid_bytes, route.prefix, 413, "payload_too_large", None)
                    return
                kind, status, code = "disconnect", 502, "upstream_error"
                detail = f"The {route.service} service closed the connection"
            except BrokenResponse:
                kind, status, code = "disconnect", 502, "upstream_error"
                detail = f"The {route.service} service sent a broken response"
            except _ClientGone:
                # Nothing the upstream did wrong; nobody is left to answer.
                inst.outstanding -= 1
                balancer.release(inst)
                breaker.release_probe()
                return
            except asyncio.CancelledError:
                inst.outstanding -= 1
                balancer.release(inst)
                breaker.release_probe()
                raise
            else:
                try:
                    await self._respond(
                        ex,
                        route,
                        breaker,
                        balancer,
                        inst,
                        resp,
                        rid_bytes,
                        decision,
                        started,
                        method,
                    )
                finally:
                    inst.outstanding -= 1
                return
            inst.outstanding -= 1
            balancer.failure(inst)
            # A connection failure: the next instance (or, with one, the same once more: a stale
            # keep-alive socket is the common cause) when that is safe for this request.
            if retryable and attempt + 1 < attempts:
                UPSTREAM_ERRORS.labels(route.service, kind + "_retried").inc()
                continue
            breaker.record_failure()
            UPSTREAM_ERRORS.labels(route.service, kind).inc()
            await self._problem(ex, rid_bytes, route.prefix, status, code, detail)
            return

    async def _respond(
        self,
        ex: Exchange,
        route: Route,
        breaker: CircuitBreaker,
        balancer: Balancer,
        inst: Instance,
        resp: UpstreamResponse,
        rid_bytes: bytes,
        decision: Decision | None,
        started: float,
        method: str,
    ) -> None:
        """Relay the upstream's response: in one piece when it is all here."""
        status = resp.status
        headers = []
        has_length = False
        for name, value in resp.headers:
            lname = name.lower()
            if lname in _RESPONSE_DROP:
                continue
            if lname == b"content-length":
                has_length = True
            headers.append((lname, value))
        headers.append((b"x-request-id", rid_bytes))
        if decision is not None:
            headers.extend(decision.headers())
        try:
            if resp.complete:
                payload = resp.body()
                if not has_length and status not in _NO_BODY_STATUSES and method != "HEAD":
                    # A chunked (or close-delimited) answer that is already complete: send it
                    # with a length, in one piece, instead of re-chunking it.
                    headers.append((b"content-length", b"%d" % len(payload)))
                await ex.respond(status, headers, payload)
            else:
                await ex.start(status, headers)
                while True:
                    chunk = await resp.read_chunk()
                    if not chunk:
                        break
                    await ex.write(chunk)
                await ex.end()
        finally:
            resp.release()
            # Bookkeeping after the answer is on its way: it is not the client's latency.
            self._latency[route.service].observe(time.perf_counter() - started)
            if status >= 500:
                UPSTREAM_ERRORS.labels(route.service, "status_5xx").inc()
                breaker.record_failure()
                balancer.failure(inst)
            else:
                breaker.record_success()
                balancer.success(inst)
        self.counter.inc(route.prefix, status)

    # --- helpers ------------------------------------------------------------------------------

    async def _authenticate(
        self, authorization: bytes | None, method: str, path: str
    ) -> tuple[Principal, bytes | None]:
        """The caller, and for an API key the `authorization` line to forward in its place."""
        if not authorization or authorization[:7].lower() != b"bearer ":
            raise TokenMissing("A bearer access token is required")
        token = authorization[7:].strip().decode("latin-1")
        if self.api_keys is not None and token[:4] == "pgk_":
            principal, line = self.api_keys.cached(token) or await self.api_keys.authenticate(token)
            if principal.scopes is not None:
                check_scopes(principal, method, path)
            return principal, line
        verified = self.tokens.get(token) or await self._verify(token)
        if verified.scopes is not None:
            check_scopes(verified, method, path)
        return verified, None

    async def _verify(self, token: str) -> Principal:
        assert self.jwks is not None
        kid = token_kid(token)
        key = self.jwks.get_key_nowait(kid) or await self.jwks.get_key(kid)
        principal = verify_with_key(
            token,
            key,
            issuer=self.settings.jwt_issuer,
            audience=self.settings.jwt_audience,
        )
        self.tokens.put(token, principal)
        return principal

    def _user_key(self, principal: Principal) -> str:
        """`str(principal.user_id)`, remembered per cached Principal (UUID.__str__ is Python)."""
        entry = self._user_keys.get(id(principal))
        if entry is not None and entry[0] is principal:
            return entry[1]
        if len(self._user_keys) >= self.settings.verified_token_cache_size:
            self._user_keys.clear()
        key = str(principal.user_id)
        # The entry holds the principal, so its id() cannot be reused while the entry exists.
        self._user_keys[id(principal)] = (principal, key)
        return key

    async def _too_many(
        self, ex: Exchange, rid_bytes: bytes, route: Route, decision: Decision
    ) -> None:
        RATE_LIMITED.labels(route.prefix).inc()
        await self._problem(
            ex,
            rid_bytes,
            route.prefix,
            429,
            "rate_limited",
            f"Too many requests; retry in {decision.retry_after} s",
            extra_headers=decision.headers(),
        )

    async def _error(self, ex: Exchange, rid_bytes: bytes, route: str, exc: PaygateError) -> None:
        headers = [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
        await self._problem(
            ex,
            rid_bytes,
            route,
            exc.status_code,
            exc.code,
            exc.detail,
            title=exc.title,
            extra_headers=headers,
        )

    async def _problem(
        self,
        ex: Exchange,
        rid_bytes: bytes,
        route: str,
        status: int,
        code: str,
        detail: str | None,
        *,
        title: str | None = None,
        extra_headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        body = problem_body(status, code, title, detail, request_id=rid_bytes.decode())
        headers = [
            *_JSON_HEADERS,
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", rid_bytes),
        ]
        if extra_headers:
            headers.extend(extra_headers)
        await ex.respond(status, headers, body)
        self.counter.inc(route, status)
