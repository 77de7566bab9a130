"""Which channels a customer hears on, and their Web Push subscriptions (auth secret sealed)."""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.channels.push import PushTarget
from notification_service.domain.errors import InvalidPushSubscription, NotificationNotFound
from notification_service.store import preferences as store
from notification_service.store.tables import Channel, PushSubscription
from paygate_common.crypto import EnvelopeCipher, Sealed

# Email on, as it always was; push on because subscribing in the browser is the opt-in; SMS
# off until the customer asks for it (SMS marketing rules want explicit consent).
DEFAULTS = {"email": True, "sms": False, "push": True}


@dataclass(frozen=True)
class Preferences:
    email: bool
    sms: bool
    push: bool

    def wants(self, channel: Channel) -> bool:
        return bool(getattr(self, channel.value))


async def preferences_for(*, session: AsyncSession, user_id: uuid.UUID) -> Preferences:
    row = await store.preferences_of(session, user_id)
    if row is None:
        return Preferences(**DEFAULTS)
    return Preferences(email=row.email, sms=row.sms, push=row.push)


async def preferences_of_users(
    *, session: AsyncSession, user_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, Preferences]:
    """`preferences_for` of several customers, in one query."""
    rows = await store.preferences_of_users(session, user_ids)
    return {
        user_id: Preferences(email=row.email, sms=row.sms, push=row.push)
        if (row := rows.get(user_id)) is not None
        else Preferences(**DEFAULTS)
        for user_id in user_ids
    }


async def update_preferences(
    *, session: AsyncSession, user_id: uuid.UUID, changes: dict[str, bool]
) -> Preferences:
    current = await preferences_for(session=session, user_id=user_id)
    values = {
        "email": changes.get("email", current.email),
        "sms": changes.get("sms", current.sms),
        "push": changes.get("push", current.push),
    }
    row = await store.upsert_preferences(session, user_id, values)
    return Preferences(email=row.email, sms=row.sms, push=row.push)


_B64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")


def _b64url(value: str, *, length: int, name: str) -> bytes:
    # strictly base64url: the lenient decoder would drop stray characters ("…=*") silently
    if not _B64URL.fullmatch(value):
        raise InvalidPushSubscription(f"keys.{name} is not base64url")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise InvalidPushSubscription(f"keys.{name} is not base64url") from None
    if len(raw) != length:
        raise InvalidPushSubscription(f"keys.{name} must be {length} bytes")
    return raw


def _aad(subscription_id: uuid.UUID) -> bytes:
    return f"push_subscriptions:{subscription_id}:auth".encode()


async def subscribe(
    *,
    session: AsyncSession,
    cipher: EnvelopeCipher,
    user_id: uuid.UUID,
    endpoint: str,
    p256dh: str,
    auth: str,
    require_https: bool,
) -> PushSubscription:
    try:  # urlsplit and .hostname raise ValueError for a malformed host ("http://[x", "::")
        parts = urlsplit(endpoint)
        hostname = parts.hostname
    except ValueError:
        raise InvalidPushSubscription("endpoint must be an http(s) URL") from None
    if parts.scheme not in ("https", "http") or not hostname:
        raise InvalidPushSubscription("endpoint must be an http(s) URL")
    if require_https and parts.scheme != "https":
        raise InvalidPushSubscription("endpoint must be https")
    public = _b64url(p256dh, length=65, name="p256dh")
    if public[0] != 0x04:
        raise InvalidPushSubscription("keys.p256dh must be an uncompressed P-256 point")
    _b64url(auth, length=16, name="auth")
    # Re-subscribing the same endpoint keeps its row id, the id the auth secret is bound to.
    existing = await store.subscription_by_endpoint(session, endpoint)
    subscription_id = existing.id if existing is not None else uuid.uuid4()
    sealed = cipher.seal(auth.encode(), aad=_aad(subscription_id))
    return await store.upsert_subscription(
        session,
        id=subscription_id,
        user_id=user_id,
        endpoint=endpoint,
        p256dh=p256dh,
        auth_key_id=sealed.key_id,
        auth_sealed=sealed.blob,
    )


async def unsubscribe(
    *, session: AsyncSession, user_id: uuid.UUID, subscription_id: uuid.UUID
) -> None:
    if not await store.delete_user_subscription(session, user_id, subscription_id):
        raise NotificationNotFound(f"No push subscription {subscription_id}")


async def push_targets(
    *, session: AsyncSession, cipher: EnvelopeCipher, user_id: uuid.UUID
) -> Sequence[tuple[uuid.UUID, PushTarget]]:
    """Every subscription of the user, with its auth secret opened for this send."""
    rows = await store.subscriptions_of(session, user_id)
    targets: list[tuple[uuid.UUID, PushTarget]] = []
    for row in rows:
        auth = cipher.open(Sealed(row.auth_key_id, row.auth_sealed), aad=_aad(row.id)).decode()
        targets.append((row.id, PushTarget(endpoint=row.endpoint, p256dh=row.p256dh, auth=auth)))
    return targets


async def reencrypt_push_secrets(*, session: AsyncSession, cipher: EnvelopeCipher) -> int:
    """Re-wrap every sealed push auth secret not yet under the active key; returns how many."""
    count = 0
    for row in await store.subscriptions_not_under(session, cipher.active_key_id):
        sealed = cipher.rewrap(Sealed(row.auth_key_id, row.auth_sealed), aad=_aad(row.id))
        await store.set_sealed_auth(session, row.id, sealed.key_id, sealed.blob)
        count += 1
    return count
