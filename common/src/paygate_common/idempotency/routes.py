"""The FastAPI side: the `Idempotency-Key` header dependency and `idempotent_request(...)`."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import anyio
from fastapi import Depends, Header, Request
from fastapi.encoders import jsonable_encoder
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import JSONResponse

from paygate_common.idempotency.claims import (
    Claim,
    Sessions,
    claim_key,
    complete_claim,
    release_claim,
)
from paygate_common.idempotency.keys import (
    DEFAULT_LEASE_SECONDS,
    DEFAULT_TTL_SECONDS,
    IDEMPOTENCY_KEY_HEADER,
    MAX_KEY_LENGTH,
    body_fingerprint,
    idempotency_scope,
    request_fingerprint,
    validate_key,
)

log = logging.getLogger("paygate.idempotency")


async def idempotency_key_header(
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=IDEMPOTENCY_KEY_HEADER,
            description="Optional. Retrying with the same key and body returns the first "
            "response instead of doing the work again (kept 24 h). 1-255 printable ASCII "
            "characters, no spaces; anything else is 400 `idempotency_key_invalid`.",
            # Documented, not enforced by FastAPI: our own check answers 400 with the stable
            # code instead of a generic 422.
            json_schema_extra={"minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": "^[!-~]+$"},
        ),
    ] = None,
) -> str | None:
    """FastAPI dependency: the validated `Idempotency-Key` header, or None when absent."""
    if idempotency_key is None:
        return None
    return validate_key(idempotency_key)


IdempotencyKeyHeader = Annotated[str | None, Depends(idempotency_key_header)]


def endpoint_of(request: Request) -> str:
    """`POST /orders`: the route's path template, so `/orders/{id}` is one endpoint."""
    route = request.scope.get("route")
    path = getattr(route, "path", None) or request.url.path
    return f"{request.method} {path}"


_RAW_BODY: Any = object()


@dataclass
class IdempotentRequest:
    """What the route sees inside `idempotent_request(...)`."""

    session: AsyncSession | None
    claim: Claim | None = None
    replay: JSONResponse | None = None
    completed: bool = field(default=False)

    async def complete(self, *, status_code: int, body: Any) -> None:
        """Store `body` (JSON-able) as the response; needs the request's session."""
        if self.claim is None:
            return
        if self.session is None:
            raise RuntimeError("idempotent_request(...) needs session= to store the response")
        await complete_claim(self.session, self.claim, status_code=status_code, body=body)
        self.completed = True

    async def respond(
        self,
        content: Any,
        *,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> JSONResponse:
        """Encode `content` (a pydantic model or anything JSON-able), store it, return it."""
        body = jsonable_encoder(content)
        await self.complete(status_code=status_code, body=body)
        return JSONResponse(body, status_code=status_code, headers=dict(headers or {}))


@asynccontextmanager
async def idempotent_request(
    request: Request,
    *,
    key: str | None,
    scope: uuid.UUID | str,
    session: AsyncSession | None = None,
    sessionmaker: Sessions | None = None,
    endpoint: str | None = None,
    ttl_seconds: float = DEFAULT_TTL_SECONDS,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    fingerprint: Any = _RAW_BODY,
) -> AsyncIterator[IdempotentRequest]:
    """Run a route's work at most once per `(caller, endpoint, key)`.

    `scope` names the caller (user id, merchant id); the endpoint (`POST /orders`) is added.
    `session` is the request's unit of work, in which `respond()` stores the response.
    `sessionmaker` defaults to `request.app.state.sessionmaker` (claims use their own
    transactions). The request hash is the canonical JSON of the raw body, or of `fingerprint`
    when given: pass the validated, normalised body (`payload.model_dump(mode="json")`) so that
    two requests that mean the same (`"USD"` and `"usd"`) replay instead of conflicting.

    Usage in a FastAPI route (the session is the request's unit of work)::

        @router.post("/orders", status_code=201, response_model=OrderRead)
        async def create_order(
            request: Request, payload: OrderCreate, principal: CurrentPrincipal,
            session: SessionDep, idempotency_key: IdempotencyKeyHeader,
        ) -> Response:
            async with idempotent_request(
                request, key=idempotency_key, scope=principal.user_id, session=session
            ) as idem:
                if idem.replay is not None:
                    return idem.replay
                order = await place_order(session=session, ...)
                return await idem.respond(OrderRead.model_validate(order), status_code=201)

    Without a key (`idempotency_key is None`) the same code runs the work and builds the response
    without touching the table. The migration creates the table with `create_idempotency_table(op)`.

    Notes for callers:
    - Declare the session with `Depends(get_session, scope="function")` so the unit of work commits
      before the response is sent (FastAPI's default scope commits after the client has its answer).
    - If that commit fails, the claim stays `in_progress` until its lease ends (`lease_seconds`,
      60 s by default), then a retry runs the work again. Choose a lease longer than the slowest
      request: a retry that takes over a live claim runs the work too (only one of the two commits,
      but side effects outside the database, such as a provider call, need their own idempotency key).
    - Errors raised by the work are not stored: the claim is released and a retry runs again.
    """
    if key is None:
        yield IdempotentRequest(session=session)
        return
    validate_key(key)
    makers: Sessions = sessionmaker or request.app.state.sessionmaker
    full_scope = idempotency_scope(scope, endpoint or endpoint_of(request))
    result = await claim_key(
        makers,
        scope=full_scope,
        key=key,
        request_hash=body_fingerprint(await request.body())
        if fingerprint is _RAW_BODY
        else request_fingerprint(fingerprint),
        ttl_seconds=ttl_seconds,
        lease_seconds=lease_seconds,
    )
    if result.replay is not None:
        yield IdempotentRequest(session=session, replay=result.replay.to_response())
        return
    assert result.claim is not None
    idem = IdempotentRequest(session=session, claim=result.claim)
    try:
        yield idem
    except BaseException:
        await _release_quietly(makers, result.claim)
        raise
    if not idem.completed:
        # The route returned without storing a response: nothing to replay, let a retry run.
        await _release_quietly(makers, result.claim)


async def _release_quietly(sessionmaker: Sessions, claim: Claim) -> None:
    # Shielded: a client that hung up cancels the request, and the release must still happen.
    with anyio.CancelScope(shield=True):
        try:
            await release_claim(sessionmaker, claim)
        except Exception:  # the lease expiry frees the key anyway
            log.warning(
                "could not release idempotency claim (scope=%s)", claim.scope, exc_info=True
            )
