"""Claiming a key before the work, storing the response with it, releasing it on failure."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import delete, func, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.responses import JSONResponse

from paygate_common.db import autocommit, unit_of_work
from paygate_common.idempotency.keys import (
    DEFAULT_LEASE_SECONDS,
    DEFAULT_TTL_SECONDS,
    REPLAYED_HEADER,
    IdempotencyKeyInProgress,
    IdempotencyKeyReused,
    validate_key,
)
from paygate_common.idempotency.schema import _TABLE, STATE_COMPLETED, STATE_IN_PROGRESS, TABLE_NAME

log = logging.getLogger("paygate.idempotency")

# How it works (one row per `(scope, key)` in the service's `idempotency_keys` table):
#
# 1. **Claim** — an `INSERT ... ON CONFLICT` committed in its own short transaction *before* the
#    work, so a concurrent duplicate sees the claim at once. The claim carries a random token and a
#    lease (`locked_until`).
# 2. **Work** — the caller does its work in its own unit of work and calls `respond()`/`complete()`
#    in that same transaction: the stored response is committed together with the work, and only if
#    the row is still held by *our* token (a duplicate that took over a stale lease cannot make the
#    work happen twice: one of the two transactions completes, the other rolls back).
# 3. **Failure** — if the work raises, the claim is deleted (own transaction) so the client may retry.
#
# Outcomes for a second request with the same key in the same scope:
#
# - same body, first one completed → the stored status code and body, header `Idempotent-Replayed`;
# - different body → 422 `idempotency_key_reused`;
# - same body while the first is still running → 409 `idempotency_key_in_progress`;
# - a claim whose lease expired (the process died, or its commit failed) → taken over and re-run;
# - a key older than its `expires_at` (≥ 24 h by default) → treated as new; `purge_expired_keys`
#   deletes such rows in batches.


# Prebuilt statements for the hot path (every idempotent POST): no statement construction or
# cache-key generation per call, and asyncpg prepares each once per connection.
# The claim takes the row over when it expired, or when its in-progress lease ran out for the
# same request (same hash).
_CLAIM = text(
    f"""
    INSERT INTO {TABLE_NAME} AS t
      (scope, key, request_hash, state, claim_token, created_at, locked_until, expires_at)
    VALUES (
      :scope, :key, :request_hash, '{STATE_IN_PROGRESS}', :token, now(),
      now() + make_interval(secs => CAST(:lease AS double precision)),
      now() + make_interval(secs => CAST(:ttl AS double precision))
    )
    ON CONFLICT (scope, key) DO UPDATE SET
      request_hash = excluded.request_hash,
      state = excluded.state,
      claim_token = excluded.claim_token,
      status_code = NULL,
      response_body = NULL,
      created_at = excluded.created_at,
      locked_until = excluded.locked_until,
      expires_at = excluded.expires_at
    WHERE t.expires_at <= now()
       OR (t.state = '{STATE_IN_PROGRESS}' AND t.locked_until <= now()
           AND t.request_hash = excluded.request_hash)
    RETURNING t.claim_token
    """  # noqa: S608 - constants only; every value is a bound parameter
)
_HOLDER = text(
    f"SELECT request_hash, state, status_code, response_body FROM {TABLE_NAME} "  # noqa: S608
    "WHERE scope = :scope AND key = :key"
)
_COMPLETE = text(
    f"""
    UPDATE {TABLE_NAME}
    SET state = '{STATE_COMPLETED}', status_code = :status_code, response_body = CAST(:body AS jsonb)
    WHERE scope = :scope AND key = :key AND claim_token = :token AND state = '{STATE_IN_PROGRESS}'
    """  # noqa: S608
)
_RELEASE = text(
    f"DELETE FROM {TABLE_NAME} "  # noqa: S608
    f"WHERE scope = :scope AND key = :key AND claim_token = :token AND state = '{STATE_IN_PROGRESS}'"
)


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
    token = secrets.token_hex(16)
    # Autocommit: the claim is one statement, so one round trip (no BEGIN/COMMIT around it).
    async with autocommit(sessionmaker) as session:
        won = (
            await session.execute(
                _CLAIM,
                {
                    "scope": scope,
                    "key": key,
                    "request_hash": request_hash,
                    "token": token,
                    "lease": float(lease_seconds),
                    "ttl": float(ttl_seconds),
                },
            )
        ).scalar_one_or_none()
        if won == token:
            return ClaimResult(claim=Claim(scope, key, request_hash, token))
        # The current holder's row (it may have completed or released it since: both are
        # handled below, as a replay or a new claim).
        row = (await session.execute(_HOLDER, {"scope": scope, "key": key})).one_or_none()
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
    result = await session.execute(
        _COMPLETE,
        {
            "scope": claim.scope,
            "key": claim.key,
            "token": claim.token,
            "status_code": status_code,
            "body": orjson.dumps(body).decode(),
        },
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        log.warning("idempotency claim lost before completion (scope=%s)", claim.scope)
        raise IdempotencyKeyInProgress(
            "A request with this Idempotency-Key took over; retry later",
            headers={"Retry-After": "1"},
        )


async def release_claim(sessionmaker: Sessions, claim: Claim) -> None:
    """Forget an unfinished claim (own transaction) so the client can retry at once."""
    async with autocommit(sessionmaker) as session:
        await session.execute(
            _RELEASE, {"scope": claim.scope, "key": claim.key, "token": claim.token}
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
