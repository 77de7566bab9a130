"""Who a notification goes to: user-service's internal contact endpoint, cached in Redis."""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass

import orjson
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from paygate_common.http import ServiceClient, UpstreamStatusError
from paygate_common.internal.users import CONTACT_PATH, ContactRead
from paygate_common.settings import ServiceSettings

log = logging.getLogger("notification_service.recipients")

CACHE_KEY_PREFIX = "notification-service:contact:"


@dataclass(frozen=True)
class Contact:
    user_id: uuid.UUID
    email: str
    full_name: str | None
    # E.164 from the profile (`ContactRead.phone`); None when it has none or an invalid one.
    phone: str | None = None


class RecipientUnknown(Exception):
    """user-service does not know the user (404): retrying will not help."""


class RecipientLookupFailed(Exception):
    """user-service could not answer right now; a later attempt may succeed."""


_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def _phone(contact: ContactRead) -> str | None:
    """The profile's phone if it is a valid E.164 one (an SMS provider refuses anything else)."""
    value = (contact.phone or "").strip()
    return value if _E164.match(value) else None


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
        try:
            body = await self.client.get_json(CONTACT_PATH.format(user_id=user_id))
            answer = ContactRead.model_validate(body)
        except UpstreamStatusError as exc:
            if exc.upstream_status == 404:
                raise RecipientUnknown(f"user-service knows no user {user_id}") from None
            raise RecipientLookupFailed(
                f"contact lookup answered HTTP {exc.upstream_status}"
            ) from None
        except ValidationError:
            raise RecipientLookupFailed("contact lookup answered outside ContactRead") from None
        except Exception as exc:  # unreachable after the client's retries, invalid JSON, ...
            raise RecipientLookupFailed(f"contact lookup failed: {type(exc).__name__}") from None
        if "@" not in answer.email:
            raise RecipientLookupFailed("contact lookup returned no email address")
        contact = Contact(
            user_id=user_id,
            email=answer.email,
            full_name=answer.full_name or None,
            phone=_phone(answer),
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
