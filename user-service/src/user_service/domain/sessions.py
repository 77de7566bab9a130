"""Sign-in sessions: opaque refresh tokens, rotated on every use, with reuse detection.

Each sign-in opens a session and hands out its first refresh token. `POST /auth/refresh` spends
that token and returns the next one. A token presented a second time means two parties hold it
(one of them stole it): the whole session is revoked, so the thief's copy and the owner's newer
one stop working together (OAuth 2.0 Security BCP, RFC 9700 §4.14.2). Tokens are stored as their
SHA-256: they carry 256 random bits, so a plain hash is as good as a keyed one.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from paygate_common.audit import Actor, record_audit
from paygate_common.auth.api_keys import random_base62
from paygate_common.events.models import AuditOutcome
from paygate_common.pagination import decode_cursor, split_page
from user_service.domain.errors import (
    AccountDisabled,
    RefreshTokenInvalid,
    RefreshTokenReused,
    SessionNotFound,
)
from user_service.settings import Settings
from user_service.store import sessions as store
from user_service.store import users
from user_service.store.tables import AuthSession, User

log = logging.getLogger("user_service.sessions")

PRODUCER = "user-service"
REFRESH_TOKEN_PREFIX = "pgr_"
_TOKEN_CHARS = 43  # 43 base62 characters: 256 bits
MAX_USER_AGENT = 512
MAX_IP = 64


def _ip(actor: Actor) -> str | None:
    return actor.source_ip[:MAX_IP] if actor.source_ip else None


def new_refresh_token() -> str:
    return REFRESH_TOKEN_PREFIX + random_base62(_TOKEN_CHARS)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class SessionTokens:
    """A session's user and the refresh token just issued for it (shown to the client once)."""

    user: User
    session_id: uuid.UUID
    refresh_token: str


def _now() -> datetime:
    return datetime.now(UTC)


async def _issue_refresh_token(
    session: AsyncSession, *, auth: AuthSession, settings: Settings
) -> str:
    token = new_refresh_token()
    expires_at = min(
        _now() + timedelta(seconds=settings.refresh_token_ttl_seconds), auth.expires_at
    )
    await store.insert_refresh_token(
        session, session_id=auth.id, token_hash=hash_refresh_token(token), expires_at=expires_at
    )
    return token


async def start_session(
    *,
    session: AsyncSession,
    user: User,
    user_agent: str | None,
    settings: Settings,
    actor: Actor,
) -> SessionTokens:
    """Open a session for a user who just proved their password; audited as `auth.signed_in`."""
    auth = await store.insert_session(
        session,
        user_id=user.id,
        user_agent=(user_agent or None) and user_agent[:MAX_USER_AGENT],
        ip=_ip(actor),
        expires_at=_now() + timedelta(seconds=settings.session_max_age_seconds),
    )
    token = await _issue_refresh_token(session, auth=auth, settings=settings)
    await record_audit(
        session,
        producer=PRODUCER,
        action="auth.signed_in",
        entity_type="user",
        entity_id=user.id,
        actor=Actor(actor_id=user.id, actor_role=user.role, source_ip=actor.source_ip),
        details={"session_id": str(auth.id)},
    )
    return SessionTokens(user=user, session_id=auth.id, refresh_token=token)


def _well_formed(token: str) -> bool:
    return (
        token.startswith(REFRESH_TOKEN_PREFIX)
        and len(token) == len(REFRESH_TOKEN_PREFIX) + _TOKEN_CHARS
    )


async def _revoke(session: AsyncSession, auth: AuthSession, *, reason: str, actor: Actor) -> bool:
    revoked = await store.revoke(session, auth.id, reason=reason)
    if revoked:
        await record_audit(
            session,
            producer=PRODUCER,
            action="auth.session_revoked",
            entity_type="session",
            entity_id=auth.id,
            actor=actor,
            details={"user_id": str(auth.user_id), "reason": reason},
        )
    return revoked


async def rotate(
    *, session: AsyncSession, refresh_token: str, settings: Settings, actor: Actor
) -> SessionTokens:
    """Spend `refresh_token` and issue the session's next one.

    A spent token revokes its session (`RefreshTokenReused`, whose unit of work still commits,
    so the revocation and its audit rows stay); an unknown, expired or revoked one is refused.
    """
    if not _well_formed(refresh_token):
        raise RefreshTokenInvalid("The refresh token is not valid")
    found = await store.lock_by_token_hash(session, hash_refresh_token(refresh_token))
    if found is None:
        raise RefreshTokenInvalid("The refresh token is not valid")
    token_row, auth = found
    if auth.revoked_at is not None:
        raise RefreshTokenInvalid("The session of this refresh token was revoked")
    owner = Actor(actor_id=auth.user_id, source_ip=actor.source_ip)
    if token_row.spent_at is not None:
        await record_audit(
            session,
            producer=PRODUCER,
            action="auth.refresh_reused",
            entity_type="session",
            entity_id=auth.id,
            actor=owner,
            outcome=AuditOutcome.DENIED,
            details={"user_id": str(auth.user_id)},
        )
        await _revoke(session, auth, reason="refresh_reused", actor=owner)
        log.warning(
            "refresh token reused: session revoked",
            extra={"session_id": str(auth.id), "user_id": str(auth.user_id)},
        )
        raise RefreshTokenReused("This refresh token was already used; sign in again")
    now = _now()
    if token_row.expires_at <= now or auth.expires_at <= now:
        raise RefreshTokenInvalid("The refresh token has expired; sign in again")
    user = await users.get_by_id(session, auth.user_id)
    if user is None:
        raise RefreshTokenInvalid("The refresh token is not valid")
    if user.disabled:
        raise AccountDisabled("This account is disabled")
    await store.spend_token(session, token_row.id)
    await store.touch_session(session, auth.id, ip=_ip(actor))
    token = await _issue_refresh_token(session, auth=auth, settings=settings)
    return SessionTokens(user=user, session_id=auth.id, refresh_token=token)


async def sign_out(*, session: AsyncSession, refresh_token: str, actor: Actor) -> None:
    """Revoke the session of `refresh_token` (spent or not); an unknown token changes nothing."""
    if not _well_formed(refresh_token):
        return
    found = await store.lock_by_token_hash(session, hash_refresh_token(refresh_token))
    if found is None:
        return
    _, auth = found
    await _revoke(
        session,
        auth,
        reason="signed_out",
        actor=Actor(actor_id=auth.user_id, source_ip=actor.source_ip),
    )


async def revoke_session(
    *, session: AsyncSession, user_id: uuid.UUID, session_id: uuid.UUID, actor: Actor
) -> None:
    auth = await store.get_live_for_user(session, user_id, session_id)
    if auth is None or not await _revoke(session, auth, reason="revoked_by_user", actor=actor):
        raise SessionNotFound("No such session")


async def revoke_all(
    *, session: AsyncSession, user_id: uuid.UUID, reason: str, actor: Actor
) -> int:
    revoked = await store.revoke_all_for_user(session, user_id, reason=reason)
    for session_id in revoked:
        await record_audit(
            session,
            producer=PRODUCER,
            action="auth.session_revoked",
            entity_type="session",
            entity_id=session_id,
            actor=actor,
            details={"user_id": str(user_id), "reason": reason},
        )
    return len(revoked)


@dataclass(frozen=True)
class SessionPage:
    items: list[AuthSession]
    next_cursor: str | None


async def list_sessions(
    *, session: AsyncSession, user_id: uuid.UUID, limit: int, cursor: str | None
) -> SessionPage:
    after = decode_cursor(cursor) if cursor else None
    rows = await store.list_live_for_user(session, user_id, limit=limit + 1, after=after)
    items, next_cursor = split_page(rows, limit)
    return SessionPage(items=items, next_cursor=next_cursor)
