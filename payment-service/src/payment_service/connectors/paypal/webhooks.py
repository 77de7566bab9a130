"""PayPal webhook verification (RSA-SHA256 over id|time|webhook_id|crc32) and event mapping."""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from paygate_common.events import PaymentStatus, RefundStatus
from payment_service.connectors.provider_http import ProviderCall, WebhookRejected

# Hosts PayPal serves its webhook signing certificates from (the CERT-URL header).
PRODUCTION_CERT_HOSTS = frozenset(
    {"api.paypal.com", "api-m.paypal.com", "api.sandbox.paypal.com", "api-m.sandbox.paypal.com"}
)
SUPPORTED_AUTH_ALGO = "SHA256withRSA"
MAX_CERT_BYTES = 64 * 1024


@dataclass(frozen=True)
class TransmissionHeaders:
    """The five PAYPAL-* headers of one webhook delivery."""

    transmission_id: str
    transmission_time: str
    transmission_sig: str
    cert_url: str
    auth_algo: str

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> TransmissionHeaders:
        lowered = {k.lower(): v for k, v in headers.items()}
        names = {
            "transmission_id": "paypal-transmission-id",
            "transmission_time": "paypal-transmission-time",
            "transmission_sig": "paypal-transmission-sig",
            "cert_url": "paypal-cert-url",
            "auth_algo": "paypal-auth-algo",
        }
        missing = [header for header in names.values() if not lowered.get(header)]
        if missing:
            raise WebhookRejected("missing_headers", ", ".join(missing))
        return cls(**{field: lowered[header] for field, header in names.items()})


def signed_message(headers: TransmissionHeaders, webhook_id: str, body: bytes) -> bytes:
    """What PayPal signs: `transmission_id|transmission_time|webhook_id|crc32(body)`.

    crc32 is over the raw body bytes as received (unsigned, in decimal): a body re-serialised
    by a framework would not verify.
    """
    crc = zlib.crc32(body) & 0xFFFFFFFF
    return f"{headers.transmission_id}|{headers.transmission_time}|{webhook_id}|{crc}".encode()


def check_cert_url(url: str, *, allowed_hosts: Collection[str], require_https: bool) -> None:
    """The certificate must come from an allowed host, else anyone could sign with their own.

    An allow-list entry is a host name (`api.paypal.com`) or `host:port` (a local stand-in).
    """
    parts = urlsplit(url)
    if require_https and parts.scheme != "https":
        raise WebhookRejected("cert_url_not_https", url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise WebhookRejected("cert_url_invalid", url)
    if parts.username or parts.password:
        raise WebhookRejected("cert_url_invalid", url)
    host = parts.hostname.lower()
    with_port = f"{host}:{parts.port}" if parts.port else host
    if host not in allowed_hosts and with_port not in allowed_hosts:
        raise WebhookRejected("cert_host_not_allowed", host)


def load_certificate(pem: bytes, *, now: datetime | None = None) -> rsa.RSAPublicKey:
    """The RSA public key of a PEM certificate that is valid right now."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise WebhookRejected("cert_unreadable", str(exc)) from exc
    moment = now or datetime.now(UTC)
    if not cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc:
        raise WebhookRejected("cert_expired")
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise WebhookRejected("cert_not_rsa")
    return key


def verify_signature(
    key: rsa.RSAPublicKey, headers: TransmissionHeaders, webhook_id: str, body: bytes
) -> None:
    """RSA-SHA256 (PKCS#1 v1.5) check of the transmission signature; raises when it fails."""
    if headers.auth_algo != SUPPORTED_AUTH_ALGO:
        raise WebhookRejected("auth_algo_unsupported", headers.auth_algo)
    try:
        signature = base64.b64decode(headers.transmission_sig, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookRejected("signature_malformed") from exc
    try:
        key.verify(
            signature,
            signed_message(headers, webhook_id, body),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except InvalidSignature as exc:
        raise WebhookRejected("signature_mismatch") from exc


def parse_event(body: bytes) -> dict[str, Any]:
    try:
        event = json.loads(body)
    except ValueError as exc:
        raise WebhookRejected("body_not_json") from exc
    if not isinstance(event, dict) or not event.get("id") or not event.get("event_type"):
        raise WebhookRejected("body_not_an_event")
    return event


def build_verify_signature_call(
    headers: TransmissionHeaders, webhook_id: str, event: Mapping[str, Any]
) -> ProviderCall:
    """`POST /v1/notifications/verify-webhook-signature`: PayPal checks the signature for us."""
    return ProviderCall(
        "webhooks.verify_signature",
        "POST",
        "/v1/notifications/verify-webhook-signature",
        json={
            "auth_algo": headers.auth_algo,
            "cert_url": headers.cert_url,
            "transmission_id": headers.transmission_id,
            "transmission_sig": headers.transmission_sig,
            "transmission_time": headers.transmission_time,
            "webhook_id": webhook_id,
            "webhook_event": dict(event),
        },
    )


def parse_verify_signature_response(body: Mapping[str, Any]) -> None:
    if body.get("verification_status") != "SUCCESS":
        raise WebhookRejected("signature_mismatch", str(body.get("verification_status")))


@dataclass(frozen=True)
class WebhookNotice:
    """What a verified event says, for the core to act on (and re-read the order to be sure).

    `payment_status` / `refund_status` are None for event types paygate does not act on.
    """

    event_id: str
    event_type: str
    resource_type: str
    resource_id: str
    order_id: str | None
    # the capture a capture or refund event is about (a refund names it only in its `up` link)
    capture_id: str | None
    merchant_reference: str | None
    payment_status: PaymentStatus | None
    refund_status: RefundStatus | None
    event: Mapping[str, Any]


_EVENT_PAYMENT_STATUS: dict[str, PaymentStatus] = {
    "CHECKOUT.ORDER.APPROVED": PaymentStatus.PROCESSING,
    "CHECKOUT.ORDER.COMPLETED": PaymentStatus.SUCCEEDED,
    "CHECKOUT.ORDER.VOIDED": PaymentStatus.CANCELLED,
    "PAYMENT.AUTHORIZATION.CREATED": PaymentStatus.REQUIRES_CAPTURE,
    "PAYMENT.AUTHORIZATION.VOIDED": PaymentStatus.CANCELLED,
    "PAYMENT.AUTHORIZATION.DENIED": PaymentStatus.FAILED,
    "PAYMENT.CAPTURE.COMPLETED": PaymentStatus.SUCCEEDED,
    "PAYMENT.CAPTURE.PENDING": PaymentStatus.PROCESSING,
    "PAYMENT.CAPTURE.DENIED": PaymentStatus.FAILED,
    "PAYMENT.CAPTURE.DECLINED": PaymentStatus.FAILED,
}
_EVENT_REFUND_STATUS: dict[str, RefundStatus] = {
    "PAYMENT.CAPTURE.REFUNDED": RefundStatus.SUCCEEDED,
    "PAYMENT.CAPTURE.REVERSED": RefundStatus.SUCCEEDED,
    "PAYMENT.REFUND.PENDING": RefundStatus.PENDING,
    "PAYMENT.REFUND.FAILED": RefundStatus.FAILED,
}


def map_event(event: Mapping[str, Any]) -> WebhookNotice:
    """A verified event → what changed. A capture-completed event whose order has a partial
    refund does not make the payment 'succeeded' again: the core re-reads the order."""
    event_type = str(event["event_type"])
    resource = event.get("resource") or {}
    related = (resource.get("supplementary_data") or {}).get("related_ids") or {}
    resource_type = str(event.get("resource_type", ""))
    order_id = related.get("order_id") or (
        resource.get("id") if resource_type == "checkout-order" else None
    )
    units = resource.get("purchase_units") or [{}]
    merchant_reference = resource.get("custom_id") or units[0].get("custom_id")
    capture_id: str | None = resource.get("id") if resource_type == "capture" else None
    for link in resource.get("links") or []:
        href = str(link.get("href", ""))
        if resource_type == "refund" and link.get("rel") == "up" and "/captures/" in href:
            capture_id = href.rstrip("/").rsplit("/", 1)[-1]
    return WebhookNotice(
        event_id=str(event["id"]),
        event_type=event_type,
        resource_type=resource_type,
        resource_id=str(resource.get("id", "")),
        order_id=str(order_id) if order_id else None,
        capture_id=str(capture_id) if capture_id else None,
        merchant_reference=str(merchant_reference) if merchant_reference else None,
        payment_status=_EVENT_PAYMENT_STATUS.get(event_type),
        refund_status=_EVENT_REFUND_STATUS.get(event_type),
        event=event,
    )
