"""Who a notification goes to: user-service's internal contact endpoint, cached in Redis."""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from paygate_common.http import ServiceClient, UpstreamStatusError
from paygate_common.settings import ServiceSettings

log = logging.getLogger("notification_service.recipients")

CACHE_KEY_PREFIX = "notification-service:contact:"


@dataclass(frozen=True)
class Contact:
    user_id: uuid.UUID
    email: str
    full_name: str | None
    # E.164 from the profile; None until user-service's contact endpoint returns `phone`.
    phone: str | None = None


class RecipientUnknown(Exception):
    """user-service does not know the user (404): retrying will not help."""


class RecipientLookupFailed(Exception):
    """user-service could not answer right now; a later attempt may succeed."""


_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def _phone(body: dict[str, object]) -> str | None:
    """The profile's phone if user-service sent a valid E.164 one (`phone` or `phone_number`)."""
    for key in ("phone", "phone_number"):
        value = body.get(key)
        if isinstance(value, str) and _E164.match(value.strip()):
            return value.strip()
    return None


def cache_key(user_id: uuid.UUID) -> str:
    return f"{CACHE_KEY_PREFIX}{user_id}"


class RecipientDirectory:
    """Contact details by user id. Only successful answers are cached, for `ttl_seconds`."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        redis: Redis,
        ttl_seconds: int,
        client: ServiceClient | None = None,
    ) -> None:
        self.redis = redis
        self.ttl_seconds = ttl_seconds
        self.client = client or ServiceClient(settings, target="user")

    async def contact_for(self, user_id: uuid.UUID) -> Contact:
        cached = await self._cached(user_id)
        if cached is not None:
            return cached
        path = f"/internal/users/{user_id}/contact"
        try:
            body = await self.client.get_json(path)
        except UpstreamStatusError as exc:
            if exc.upstream_status == 404:
                raise RecipientUnknown(f"user-service knows no user {user_id}") from None
            raise RecipientLookupFailed(
                f"contact lookup answered HTTP {exc.upstream_status}"
            ) from None
        except Exception as exc:  # unreachable after the client's retries, invalid JSON, ...
            raise RecipientLookupFailed(f"contact lookup failed: {type(exc).__name__}") from None
        email = body.get("email") if isinstance(body, dict) else None
        if not isinstance(email, str) or "@" not in email:
            raise RecipientLookupFailed("contact lookup returned no email address")
        full_name = body.get("full_name")
        contact = Contact(
            user_id=user_id,
            email=email,
            full_name=full_name if isinstance(full_name, str) else None,
            phone=_phone(body),
        )
        await self._store(contact)
        return contact

    async def _cached(self, user_id: uuid.UUID) -> Contact | None:
        try:
            raw = await self.redis.get(cache_key(user_id))
        except RedisError as exc:  # the cache is an optimisation: fall through to user-service
            log.warning("contact cache read failed: %s", type(exc).__name__)
            return None
        if raw is None:
            return None
        data = orjson.loads(raw)
        return Contact(
            user_id=user_id,
            email=data["email"],
            full_name=data.get("full_name"),
            phone=data.get("phone"),
        )

    async def _store(self, contact: Contact) -> None:
        value = orjson.dumps(
            {"email": contact.email, "full_name": contact.full_name, "phone": contact.phone}
        )
        try:
            await self.redis.set(cache_key(contact.user_id), value, ex=self.ttl_seconds)
        except RedisError as exc:
            log.warning("contact cache write failed: %s", type(exc).__name__)

    async def aclose(self) -> None:
        await self.client.aclose()
