"""Merchant API keys: issued once, kept as an HMAC, resolved for the gateway, revoked for good.

A key is found by its lookup id (a unique index), then the HMAC-SHA256 of the whole key under
the server secret is compared in constant time; an unknown lookup id is compared against a dummy
digest, so the answer takes the same path either way.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from dataclasses import dataclass

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from paygate_common.audit import Actor, record_audit
from paygate_common.auth import generate_api_key, parse_api_key
from paygate_common.pagination import decode_cursor, split_page
from user_service.domain.errors import ApiKeyInvalid, ApiKeyNotFound, TooManyApiKeys, UserNotFound
from user_service.store import api_keys as store
from user_service.store import users
from user_service.store.tables import ApiKey, User

log = logging.getLogger("user_service.api_keys")

PRODUCER = "user-service"
_DUMMY_DIGEST = "0" * 64


class ApiKeyHasher:
    """HMAC-SHA256 under the server's secret: a leaked table alone cannot be brute-forced."""

    def __init__(self, secret: SecretStr) -> None:
        self._secret = secret.get_secret_value().encode()

    def digest(self, key: str) -> str:
        return hmac.new(self._secret, key.encode(), hashlib.sha256).hexdigest()

    def matches(self, key: str, stored_digest: str) -> bool:
        return hmac.compare_digest(self.digest(key), stored_digest)


def display_prefix(row: ApiKey) -> str:
    return f"pgk_{row.environment}_{row.lookup_id}"


@dataclass(frozen=True)
class IssuedApiKey:
    row: ApiKey
    key: str  # shown to the owner once, never stored


async def create_api_key(
    *,
    session: AsyncSession,
    hasher: ApiKeyHasher,
    user_id: uuid.UUID,
    name: str,
    scopes: list[str] | None,
    environment: str,
    max_keys: int,
    actor: Actor,
) -> IssuedApiKey:
    # The owner's row lock serialises concurrent creates, so the per-user cap holds.
    if await users.get_by_id(session, user_id, for_update=True) is None:
        raise UserNotFound("No such user")
    if await store.count_live(session, user_id) >= max_keys:
        raise TooManyApiKeys(f"At most {max_keys} live API keys per account")
    normalised = sorted(set(scopes)) if scopes is not None else None
    for attempt in range(2):
        key, parsed = generate_api_key(environment)
        try:
            row = await store.insert(
                session,
                user_id=user_id,
                name=name,
                environment=parsed.environment,
                lookup_id=parsed.lookup_id,
                key_hash=hasher.digest(key),
                scopes=normalised,
            )
        except store.DuplicateLookupId:
            if attempt:
                raise
            continue
        break
    await record_audit(
        session,
        producer=PRODUCER,
        action="api_key.created",
        entity_type="api_key",
        entity_id=row.id,
        actor=actor,
        details={"prefix": display_prefix(row), "scopes": normalised},
    )
    log.info("API key created", extra={"api_key_id": str(row.id), "user_id": str(user_id)})
    return IssuedApiKey(row=row, key=key)


@dataclass(frozen=True)
class ApiKeyPage:
    items: list[ApiKey]
    next_cursor: str | None


async def list_api_keys(
    *, session: AsyncSession, user_id: uuid.UUID, limit: int, cursor: str | None
) -> ApiKeyPage:
    after = decode_cursor(cursor) if cursor else None
    rows = await store.list_live(session, user_id, limit=limit + 1, after=after)
    items, next_cursor = split_page(rows, limit)
    return ApiKeyPage(items=items, next_cursor=next_cursor)


async def revoke_api_key(
    *, session: AsyncSession, user_id: uuid.UUID, key_id: uuid.UUID, actor: Actor
) -> None:
    if not await store.revoke(session, user_id, key_id):
        raise ApiKeyNotFound("No such API key")
    await record_audit(
        session,
        producer=PRODUCER,
        action="api_key.revoked",
        entity_type="api_key",
        entity_id=key_id,
        actor=actor,
    )
    log.info("API key revoked", extra={"api_key_id": str(key_id), "user_id": str(user_id)})


@dataclass(frozen=True)
class ResolvedApiKey:
    row: ApiKey
    owner: User


async def resolve_api_key(
    *, session: AsyncSession, hasher: ApiKeyHasher, key: str, environment: str
) -> ResolvedApiKey:
    """The live key and its enabled owner; `ApiKeyInvalid` for anything else, with one answer."""
    parsed = parse_api_key(key)
    if parsed is None or parsed.environment != environment:
        raise ApiKeyInvalid("The API key is not valid")
    found = await store.find_with_owner(session, parsed.lookup_id)
    matches = hasher.matches(key, found[0].key_hash if found else _DUMMY_DIGEST)
    if found is None or not matches:
        raise ApiKeyInvalid("The API key is not valid")
    row, owner = found
    if row.revoked_at is not None or owner.disabled:
        raise ApiKeyInvalid("The API key is not valid")
    await store.mark_used(session, row.id)
    return ResolvedApiKey(row=row, owner=owner)
