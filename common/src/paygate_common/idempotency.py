"""`Idempotency-Key` for mutating endpoints: claim, replay the stored response, or refuse.

How it works (one row per `(scope, key)` in the service's `idempotency_keys` table):

1. **Claim** — an `INSERT ... ON CONFLICT` committed in its own short transaction *before* the
   work, so a concurrent duplicate sees the claim at once. The claim carries a random token and a
   lease (`locked_until`).
2. **Work** — the caller does its work in its own unit of work and calls `respond()`/`complete()`
   in that same transaction: the stored response is committed together with the work, and only if
   the row is still held by *our* token (a duplicate that took over a stale lease cannot make the
   work happen twice: one of the two transactions completes, the other rolls back).
3. **Failure** — if the work raises, the claim is deleted (own transaction) so the client may retry.

Outcomes for a second request with the same key in the same scope:

- same body, first one completed → the stored status code and body, header `Idempotent-Replayed`;
- different body → 422 `idempotency_key_reused`;
- same body while the first is still running → 409 `idempotency_key_in_progress`;
- a claim whose lease expired (the process died, or its commit failed) → taken over and re-run;
- a key older than its `expires_at` (≥ 24 h by default) → treated as new; `purge_expired_keys`
  deletes such rows in batches.

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

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any

import anyio
import orjson
from fastapi import Depends, Header, Request
from fastapi.encoders import jsonable_encoder
from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    and_,
    delete,
    func,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.responses import JSONResponse

from paygate_common.db import autocommit, new_metadata, unit_of_work
from paygate_common.errors import Conflict, InvalidRequest, PaygateError

log = logging.getLogger("paygate.idempotency")

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
TABLE_NAME = "idempotency_keys"

# Stripe allows 255 characters; printable ASCII without spaces keeps keys safe in logs and headers.
MAX_KEY_LENGTH = 255
_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")

DEFAULT_TTL_SECONDS = 24 * 3600
# How long a claim may stay in progress before a retry may take it over (process died mid-way).
DEFAULT_LEASE_SECONDS = 60.0

STATE_IN_PROGRESS = "in_progress"
STATE_COMPLETED = "completed"


class IdempotencyKeyInvalid(PaygateError):
    status_code, code, title = 400, "idempotency_key_invalid", "The Idempotency-Key is not valid"


class IdempotencyKeyReused(InvalidRequest):
    code, title = "idempotency_key_reused", "The Idempotency-Key was used with a different request"


class IdempotencyKeyInProgress(Conflict):
    code, title = (
        "idempotency_key_in_progress",
        "A request with this Idempotency-Key is still being processed",
    )


# --- the table --------------------------------------------------------------------------------


def idempotency_table(metadata: MetaData) -> Table:
    """Add (or return) the `idempotency_keys` table in a service's metadata."""
    existing = metadata.tables.get(TABLE_NAME)
    if existing is not None:
        return existing
    return Table(TABLE_NAME, metadata, *_columns(), *_constraints())


def _columns() -> list[Column[Any]]:
    return [
        # caller + endpoint, e.g. "user:<uuid>|POST /orders"
        Column("scope", String(300), nullable=False),
        Column("key", String(MAX_KEY_LENGTH), nullable=False),
        Column("request_hash", String(64), nullable=False),
        Column("state", String(16), nullable=False),
        Column("claim_token", String(32), nullable=False),
        Column("status_code", Integer, nullable=True),
        Column("response_body", JSONB, nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("locked_until", DateTime(timezone=True), nullable=False),
        Column("expires_at", DateTime(timezone=True), nullable=False),
    ]


def _constraints() -> list[Any]:
    return [
        PrimaryKeyConstraint("scope", "key", name=f"pk_{TABLE_NAME}"),
        Index(f"ix_{TABLE_NAME}_expires_at", "expires_at"),
    ]


def create_idempotency_table(op: Any) -> None:
    """For a service's alembic migration: `create_idempotency_table(op)`."""
    op.create_table(TABLE_NAME, *_columns(), *_constraints())


def drop_idempotency_table(op: Any) -> None:
    op.drop_table(TABLE_NAME)


# A private metadata so the functions below work whatever metadata the service declared.
_TABLE = idempotency_table(new_metadata())


# --- keys, scopes, fingerprints ---------------------------------------------------------------


def validate_key(key: str) -> str:
    """The key itself, or `IdempotencyKeyInvalid` (never echoes the value back)."""
    if not _KEY_RE.fullmatch(key):
        raise IdempotencyKeyInvalid(
            f"{IDEMPOTENCY_KEY_HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters "
            "without spaces"
        )
    return key


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


def canonical_json(data: Any) -> bytes:
    """Sorted keys, no whitespace: two equal JSON documents give equal bytes."""
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def request_fingerprint(data: Any) -> str:
    """SHA-256 of the canonical JSON of a request body (already parsed)."""
    return hashlib.sha256(canonical_json(data)).hexdigest()


def body_fingerprint(raw: bytes) -> str:
    """Fingerprint of a raw body: canonical when it is JSON, the bytes themselves otherwise."""
    if not raw.strip():
        return request_fingerprint(None)
    try:
        return request_fingerprint(orjson.loads(raw))
    except orjson.JSONDecodeError:
        return hashlib.sha256(raw).hexdigest()


def idempotency_scope(caller: uuid.UUID | str, endpoint: str) -> str:
    """Keys are per caller and per endpoint: one user's key never collides with another's."""
    return f"{caller}|{endpoint}"


def endpoint_of(request: Request) -> str:
    """`POST /orders`: the route's path template, so `/orders/{id}` is one endpoint."""
    route = request.scope.get("route")
    path = getattr(route, "path", None) or request.url.path
    return f"{request.method} {path}"


# --- claim / complete / release ---------------------------------------------------------------


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: Any

    def to_response(self, headers: Mapping[str, str] | None = None) -> JSONResponse:
        return JSONResponse(
            self.body,
            status_code=self.status_code,
            headers={REPLAYED_HEADER: "true", **(headers or {})},
        )


@dataclass(frozen=True)
class Claim:
    """The right to run the work for `(scope, key)`; `token` proves it is still ours."""

    scope: str
    key: str
    request_hash: str
    token: str


@dataclass(frozen=True)
class ClaimResult:
    """Exactly one of `claim` (run the work) or `replay` (return the stored response)."""

    claim: Claim | None = None
    replay: StoredResponse | None = None


Sessions = async_sessionmaker[AsyncSession]


async def claim_key(
    sessionmaker: Sessions,
    *,
    scope: str,
    key: str,
    request_hash: str,
    ttl_seconds: float = DEFAULT_TTL_SECONDS,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    _attempts: int = 3,
) -> ClaimResult:
    """Claim the key (own committed transaction), or return the stored response.

    Raises `IdempotencyKeyReused` (different body) or `IdempotencyKeyInProgress` (same body,
    still running).
    """
    validate_key(key)
    t = _TABLE
    token = secrets.token_hex(16)
    now = func.now()
    insert_claim = insert(t).values(
        scope=scope,
        key=key,
        request_hash=request_hash,
        state=STATE_IN_PROGRESS,
        claim_token=token,
        created_at=now,
        locked_until=now + timedelta(seconds=lease_seconds),
        expires_at=now + timedelta(seconds=ttl_seconds),
    )
    excluded = insert_claim.excluded
    # Take the row over when it expired, or when its in-progress lease ran out (same request).
    stmt = insert_claim.on_conflict_do_update(
        index_elements=[t.c.scope, t.c.key],
        set_={
            "request_hash": excluded.request_hash,
            "state": excluded.state,
            "claim_token": excluded.claim_token,
            "status_code": None,
            "response_body": None,
            "created_at": excluded.created_at,
            "locked_until": excluded.locked_until,
            "expires_at": excluded.expires_at,
        },
        where=or_(
            t.c.expires_at <= now,
            and_(
                t.c.state == STATE_IN_PROGRESS,
                t.c.locked_until <= now,
                t.c.request_hash == excluded.request_hash,
            ),
        ),
    ).returning(t.c.claim_token)
    # Autocommit: the claim is one statement, so one round trip (no BEGIN/COMMIT around it).
    async with autocommit(sessionmaker) as session:
        won = (await session.execute(stmt)).scalar_one_or_none()
        if won == token:
            return ClaimResult(claim=Claim(scope, key, request_hash, token))
        # The current holder's row (it may have completed or released it since: both are
        # handled below, as a replay or a new claim).
        row = (
            await session.execute(
                select(t.c.request_hash, t.c.state, t.c.status_code, t.c.response_body).where(
                    t.c.scope == scope, t.c.key == key
                )
            )
        ).one_or_none()
    if row is None and _attempts > 1:
        # Released between the two statements (the holder failed): try to claim it again.
        return await claim_key(
            sessionmaker,
            scope=scope,
            key=key,
            request_hash=request_hash,
            ttl_seconds=ttl_seconds,
            lease_seconds=lease_seconds,
            _attempts=_attempts - 1,
        )
    if row is None:
        raise IdempotencyKeyInProgress(
            "A request with this Idempotency-Key is being retried; retry later",
            headers={"Retry-After": "1"},
        )
    if row.request_hash != request_hash:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used with a different request body"
        )
    if row.state != STATE_COMPLETED:
        raise IdempotencyKeyInProgress(
            "A request with this Idempotency-Key is still being processed; retry later",
            headers={"Retry-After": "1"},
        )
    return ClaimResult(replay=StoredResponse(row.status_code, row.response_body))


async def complete_claim(
    session: AsyncSession, claim: Claim, *, status_code: int, body: Any
) -> None:
    """Store the response in the caller's transaction; the work commits with it or not at all.

    Raises `IdempotencyKeyInProgress` if the claim is no longer ours (its lease ran out and a
    retry took it over): the caller's transaction must then roll back.
    """
    t = _TABLE
    result = await session.execute(
        update(t)
        .where(
            t.c.scope == claim.scope,
            t.c.key == claim.key,
            t.c.claim_token == claim.token,
            t.c.state == STATE_IN_PROGRESS,
        )
        .values(state=STATE_COMPLETED, status_code=status_code, response_body=body)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        log.warning("idempotency claim lost before completion (scope=%s)", claim.scope)
        raise IdempotencyKeyInProgress(
            "A request with this Idempotency-Key took over; retry later",
            headers={"Retry-After": "1"},
        )


async def release_claim(sessionmaker: Sessions, claim: Claim) -> None:
    """Forget an unfinished claim (own transaction) so the client can retry at once."""
    t = _TABLE
    async with autocommit(sessionmaker) as session:
        await session.execute(
            delete(t).where(
                t.c.scope == claim.scope,
                t.c.key == claim.key,
                t.c.claim_token == claim.token,
                t.c.state == STATE_IN_PROGRESS,
            )
        )


async def purge_expired_keys(
    target: AsyncEngine | Sessions, *, batch_size: int = 1000, max_batches: int = 100
) -> int:
    """Delete expired keys in batches (short transactions); returns how many went."""
    t = _TABLE
    sessionmaker = (
        async_sessionmaker(target, expire_on_commit=False)
        if isinstance(target, AsyncEngine)
        else target
    )
    total = 0
    for _ in range(max_batches):
        doomed = (
            select(t.c.scope, t.c.key)
            .where(t.c.expires_at <= func.now())
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        )
        async with unit_of_work(sessionmaker) as session:
            result = await session.execute(
                delete(t).where(
                    t.c.expires_at <= func.now(),
                    tuple_(t.c.scope, t.c.key).in_(doomed),
                )
            )
        deleted = int(result.rowcount or 0)  # type: ignore[attr-defined]
        total += deleted
        if deleted < batch_size:
            break
    return total


# --- the FastAPI-friendly wrapper -------------------------------------------------------------

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


__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "DEFAULT_TTL_SECONDS",
    "IDEMPOTENCY_KEY_HEADER",
    "MAX_KEY_LENGTH",
    "REPLAYED_HEADER",
    "Claim",
    "ClaimResult",
    "IdempotencyKeyHeader",
    "IdempotencyKeyInProgress",
    "IdempotencyKeyInvalid",
    "IdempotencyKeyReused",
    "IdempotentRequest",
    "StoredResponse",
    "body_fingerprint",
    "canonical_json",
    "claim_key",
    "complete_claim",
    "create_idempotency_table",
    "drop_idempotency_table",
    "endpoint_of",
    "idempotency_key_header",
    "idempotency_scope",
    "idempotency_table",
    "idempotent_request",
    "purge_expired_keys",
    "release_claim",
    "request_fingerprint",
    "validate_key",
]
