"""The connector contract: a connector only translates; the core does I/O, idempotency, retries.

A connector builds the provider request for an authorization and maps the provider's answer
(a PaymentIntent, a decline, a webhook object) to a `ConnectorResult` with an exhaustive status
`match`. A transport sends a built request and looks up what the provider holds for a payment;
it raises `ProviderUnavailable` when the outcome is unknown (network error, 5xx, rate limit).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from paygate_common.events import PaymentStatus


@dataclass(frozen=True)
class PaymentContext:
    """What an authorization needs: our payment plus the user's saved provider token."""

    payment_id: uuid.UUID
    order_id: uuid.UUID
    user_id: uuid.UUID
    amount: int
    currency: str
    attempt_no: int
    idempotency_key: str
    payment_method_token: str
    provider_customer_id: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class ProviderRequest:
    """A provider call ready to send; `params` never hold card data, only provider tokens."""

    operation: str
    params: dict[str, Any]
    idempotency_key: str


@dataclass(frozen=True)
class ConnectorResult:
    """The provider's answer in our vocabulary."""

    status: PaymentStatus
    provider_reference: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    decline_code: str | None = None
    # What a client needs to finish (3-D Secure redirect, type); never a client secret.
    next_action: dict[str, Any] | None = None
    raw_status: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


class ProviderUnavailable(Exception):
    """The provider call ended without a known outcome; it may or may not have charged."""


class Connector(Protocol):
    """Pure translation between our payment and one provider; no I/O."""

    name: str

    def build_authorize_request(self, payment: PaymentContext) -> ProviderRequest: ...

    def parse_authorize_response(self, raw: Mapping[str, Any]) -> ConnectorResult:
        """Map a provider answer (a payment object, or `{"error": {...}}`) to a result."""
        ...


class ProviderTransport(Protocol):
    """The I/O half: sends built requests and reads what the provider holds."""

    async def send(self, request: ProviderRequest) -> Mapping[str, Any]:
        """The raw answer; a decline is an answer (`{"error": ...}`), not an exception."""
        ...

    async def find_payment(
        self, payment_id: uuid.UUID, *, customer: str | None = None
    ) -> Mapping[str, Any] | None:
        """The provider object created for our payment (by metadata), or None if none exists."""
        ...

    async def aclose(self) -> None: ...


def idempotency_key(payment_id: uuid.UUID, attempt_no: int) -> str:
    """One key per attempt, derived from our own ids (the provider may ignore it: localstripe)."""
    return f"paygate-{payment_id}-{attempt_no}"


def safe_next_action(next_action: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Keep only what a client needs to finish authentication; drop anything secret-looking."""
    if not next_action:
        return None
    kind = str(next_action.get("type") or "unknown")
    safe: dict[str, Any] = {"type": kind}
    redirect = next_action.get("redirect_to_url")
    if isinstance(redirect, Mapping) and redirect.get("url"):
        safe["redirect_to_url"] = {"url": str(redirect["url"])}
        if redirect.get("return_url"):
            safe["redirect_to_url"]["return_url"] = str(redirect["return_url"])
    sdk = next_action.get("use_stripe_sdk")
    if isinstance(sdk, Mapping) and sdk.get("type"):
        safe["use_stripe_sdk"] = {"type": str(sdk["type"])}
    return safe
