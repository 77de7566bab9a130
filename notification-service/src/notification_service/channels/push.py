"""Web Push: RFC 8291 payload encryption (pywebpush), RFC 8292 VAPID, RFC 8030 delivery (httpx)."""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid02
from pywebpush import WebPusher

from notification_service.channels.email import DeliveryError, PermanentDeliveryError
from notification_service.settings import Settings

log = logging.getLogger("notification_service.channels.push")


class SubscriptionGone(PermanentDeliveryError):
    """The push service answered 404/410: the browser dropped the subscription."""


@dataclass(frozen=True)
class PushTarget:
    endpoint: str
    p256dh: str
    auth: str


def load_vapid(settings: Settings) -> Vapid02:
    """The VAPID key from settings (PEM or base64url raw), or an ephemeral one outside production."""
    if settings.vapid_private_key is None or not settings.vapid_private_key.get_secret_value():
        if settings.environment == "production":
            raise ValueError("vapid_private_key must be set in production")
        log.warning("no VAPID key configured: using an ephemeral one (subscriptions won't survive)")
        vapid = Vapid02()
        vapid.generate_keys()
        return vapid
    value = settings.vapid_private_key.get_secret_value().strip()
    if value.startswith("-----BEGIN"):
        return Vapid02.from_pem(value.encode())
    return Vapid02.from_raw(value.encode())


def application_server_key(vapid: Vapid02) -> str:
    """The public key a browser passes to `pushManager.subscribe` (base64url, uncompressed)."""
    raw = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class WebPushClient:
    def __init__(
        self, settings: Settings, vapid: Vapid02, client: httpx.AsyncClient | None = None
    ) -> None:
        self.settings = settings
        self.vapid = vapid
        self.client = client or httpx.AsyncClient(
            timeout=settings.push_timeout_seconds, trust_env=False
        )

    def _authorization(self, endpoint: str) -> str:
        parts = urlsplit(endpoint)
        claims = {"aud": f"{parts.scheme}://{parts.netloc}", "sub": self.settings.vapid_subject}
        return str(self.vapid.sign(claims)["Authorization"])

    async def send(self, target: PushTarget, payload: bytes, *, topic: str | None = None) -> None:
        encoded = WebPusher(
            {"endpoint": target.endpoint, "keys": {"p256dh": target.p256dh, "auth": target.auth}}
        ).encode(payload, content_encoding="aes128gcm")
        headers = {
            "TTL": str(self.settings.push_ttl_seconds),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "Urgency": "normal",
            "Authorization": self._authorization(target.endpoint),
        }
        if topic:
            headers["Topic"] = topic
        try:
            response = await self.client.post(
                target.endpoint, content=encoded["body"], headers=headers
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(f"push service unreachable: {type(exc).__name__}") from None
        if response.status_code in (200, 201, 202):
            return
        reason = f"push service answered HTTP {response.status_code}"
        if response.status_code in (404, 410):
            raise SubscriptionGone(reason)
        if response.status_code in (400, 401, 403, 413):
            raise PermanentDeliveryError(reason)
        raise DeliveryError(reason)

    async def aclose(self) -> None:
        await self.client.aclose()
