"""The connector contract: a connector only translates; the core does I/O, idempotency, retries.

For each flow — authorise, capture, void, refund — a connector builds the provider request
(`build_<flow>_request`) and maps the provider's answer (`parse_<flow>_response`) with an
exhaustive status `match`; `parse_webhook` maps a provider event to the same results. A flow the
provider cannot do is declared in `capabilities`; asking for it raises `UnsupportedFlow` (the
API answers 422 `unsupported_by_provider`), never a silent no-op.

A transport sends a built request and looks up what the provider holds (a payment by our id,
a payment by its reference, a refund by our id); it raises `ProviderUnavailable` when the
outcome is unknown (network error, 5xx, rate limit), which is what reconciliation is for.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from paygate_common.errors import InvalidRequest
from paygate_common.events import PaymentStatus, RefundStatus
from paygate_common.money import minimum_charge


class Flow(StrEnum):
    AUTHORIZE = "authorize"
    MANUAL_CAPTURE = "manual_capture"
    PARTIAL_CAPTURE = "partial_capture"
    VOID = "void"
    REFUND = "refund"
    PARTIAL_REFUND = "partial_refund"
    WEBHOOKS = "webhooks"
    # The customer approves at the provider's page and comes back; only then do we ask the
    # provider to charge (PayPal's capture/authorise) or to confirm (SSLCommerz's validation).
    COMPLETE_REDIRECT = "complete_redirect"


class UnsupportedFlow(InvalidRequest):
    """The connector cannot do this flow: 422 `unsupported_by_provider`, never a silent no-op."""

    code, title = "unsupported_by_provider", "The payment's provider cannot do this"

    def __init__(self, connector: str, flow: Flow) -> None:
        super().__init__(
            f"The {connector} provider does not support {flow.value.replace('_', ' ')}",
            provider=connector,
            flow=flow.value,
        )
        self.connector = connector
        self.flow = flow


@dataclass(frozen=True)
class PaymentContext:
    """What an authorisation needs: our payment plus the provider token to charge."""

    payment_id: uuid.UUID
    order_id: uuid.UUID | None
    user_id: uuid.UUID
    amount: int
    currency: str
    attempt_no: int
    idempotency_key: str
    payment_method_token: str
    provider_customer_id: str | None = None
    description: str | None = None
    capture_method: str = "automatic"
    return_url: str | None = None
    # Redirect providers: where the customer's browser comes back to (our return route, which
    # the provider may extend with `/success` etc.) and where the provider notifies us.
    callback_url: str | None = None
    notify_url: str | None = None


@dataclass(frozen=True)
class CompleteContext:
    """The customer came back from a redirect provider (or the provider told us): finish it."""

    payment_id: uuid.UUID
    provider_reference: str
    amount: int
    currency: str
    capture_method: str
    idempotency_key: str
    # What the provider sent along (SSLCommerz's signed fields), verified by the transport.
    callback: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CaptureContext:
    payment_id: uuid.UUID
    provider_reference: str
    amount: int
    currency: str
    idempotency_key: str


@dataclass(frozen=True)
class VoidContext:
    payment_id: uuid.UUID
    provider_reference: str
    idempotency_key: str


@dataclass(frozen=True)
class RefundContext:
    refund_id: uuid.UUID
    payment_id: uuid.UUID
    provider_reference: str
    amount: int
    currency: str
    idempotency_key: str
    reason: str | None = None


@dataclass(frozen=True)
class ProviderRequest:
    """A provider call ready to send; `params` never hold card data, only provider tokens."""

    operation: str
    params: dict[str, Any]
    idempotency_key: str
    # The provider object the call acts on (a PaymentIntent id), if any.
    target: str | None = None


@dataclass(frozen=True)
class ConnectorResult:
    """A payment's state at the provider, in our vocabulary."""

    status: PaymentStatus
    provider_reference: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    decline_code: str | None = None
    # What a client needs to finish (3-D Secure redirect, type); never a client secret.
    next_action: dict[str, Any] | None = None
    raw_status: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    # What the provider reports, when it does (localstripe omits some): None = not said.
    amount_capturable: int | None = None
    amount_captured: int | None = None


@dataclass(frozen=True)
class RefundResult:
    """A refund's state at the provider."""

    status: RefundStatus
    provider_reference: str | None = None
    amount: int | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    # Our refund id, from the provider object's metadata (None for a refund made elsewhere).
    refund_id: uuid.UUID | None = None
    raw_status: str | None = None


@dataclass(frozen=True)
class WebhookUpdate:
    """What a provider event says: a payment's new state, and/or refunds' states."""

    provider_reference: str | None
    payment_id: uuid.UUID | None = None
    payment: ConnectorResult | None = None
    refunds: tuple[RefundResult, ...] = ()
    # The amount and currency the event's object carries (checked against ours).
    amount: int | None = None
    currency: str | None = None


class ProviderUnavailable(Exception):
    """The provider call ended without a known outcome; it may or may not have happened."""


class Connector(Protocol):
    """Pure translation between our payments and one provider; no I/O."""

    name: str
    capabilities: frozenset[Flow]
    # A card provider charges a saved method or token; a redirect provider needs none (the
    # customer chooses how to pay on the provider's page).
    needs_payment_method: bool

    def minimum_amount(self, currency: str) -> int: ...

    def build_authorize_request(self, payment: PaymentContext) -> ProviderRequest: ...

    def parse_authorize_response(self, raw: Mapping[str, Any]) -> ConnectorResult:
        """Map a provider answer (a payment object, or `{"error": {...}}`) to a result."""
        ...

    def build_capture_request(self, capture: CaptureContext) -> ProviderRequest: ...

    def parse_capture_response(self, raw: Mapping[str, Any]) -> ConnectorResult: ...

    def build_void_request(self, void: VoidContext) -> ProviderRequest: ...

    def parse_void_response(self, raw: Mapping[str, Any]) -> ConnectorResult: ...

    def build_refund_request(self, refund: RefundContext) -> ProviderRequest: ...

    def parse_refund_response(self, raw: Mapping[str, Any]) -> RefundResult: ...

    def parse_webhook(self, event: Mapping[str, Any]) -> WebhookUpdate | None:
        """The update a verified provider event carries; None for events we do not act on."""
        ...

    def build_complete_request(self, complete: CompleteContext) -> ProviderRequest:
        """Flow.COMPLETE_REDIRECT only; others raise UnsupportedFlow."""
        ...

    def parse_complete_response(self, raw: Mapping[str, Any]) -> ConnectorResult: ...


class ProviderTransport(Protocol):
    """The I/O half: sends built requests and reads what the provider holds."""

    async def send(self, request: ProviderRequest) -> Mapping[str, Any]:
        """The raw answer; a refusal is an answer (`{"error": ...}`), not an exception."""
        ...

    async def find_payment(
        self, payment_id: uuid.UUID, *, customer: str | None = None
    ) -> Mapping[str, Any] | None:
        """The provider object created for our payment (by metadata), or None if none exists."""
        ...

    async def retrieve_payment(self, provider_reference: str) -> Mapping[str, Any]:
        """The provider object by its own id (to reconcile a capture or a void)."""
        ...

    async def find_refund(
        self,
        refund_id: uuid.UUID,
        *,
        provider_reference: str,
        refund_reference: str | None = None,
    ) -> Mapping[str, Any] | None:
        """The provider refund created for our refund (by metadata, or by the provider's own
        refund id when the provider can only be asked that way), or None if none exists."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class CardOperations:
    """A card provider's names for the calls on a payment after its charge."""

    capture: str
    void: str
    refund: str
    # The parameter a (partial) capture's amount travels in.
    capture_amount: str = "amount"


class CardConnector:
    """What card connectors (Stripe, the sandbox) share: they charge a method; no redirect to
    complete (Stripe's 3-D Secure finishes at Stripe and reaches us as a webhook). Capture,
    void and refund requests are built from the provider's `operations` table (a refund's
    parameters from `refund_params`); their answers are the payment object `parse_authorize_
    response` reads."""

    name: str
    needs_payment_method = True
    operations: CardOperations

    def minimum_amount(self, currency: str) -> int:
        return minimum_charge(currency)

    def parse_authorize_response(self, raw: Mapping[str, Any]) -> ConnectorResult:
        raise NotImplementedError

    def refund_params(self, refund: RefundContext) -> dict[str, Any]:
        raise NotImplementedError

    def build_capture_request(self, capture: CaptureContext) -> ProviderRequest:
        return ProviderRequest(
            operation=self.operations.capture,
            params={self.operations.capture_amount: capture.amount},
            idempotency_key=capture.idempotency_key,
            target=capture.provider_reference,
        )

    def parse_capture_response(self, raw: Mapping[str, Any]) -> ConnectorResult:
        return self.parse_authorize_response(raw)

    def build_void_request(self, void: VoidContext) -> ProviderRequest:
        return ProviderRequest(
            operation=self.operations.void,
            params={},
            idempotency_key=void.idempotency_key,
            target=void.provider_reference,
        )

    def parse_void_response(self, raw: Mapping[str, Any]) -> ConnectorResult:
        return self.parse_authorize_response(raw)

    def build_refund_request(self, refund: RefundContext) -> ProviderRequest:
        return ProviderRequest(
            operation=self.operations.refund,
            params=self.refund_params(refund),
            idempotency_key=refund.idempotency_key,
            target=refund.provider_reference,
        )

    def build_complete_request(self, complete: CompleteContext) -> ProviderRequest:
        raise UnsupportedFlow(self.name, Flow.COMPLETE_REDIRECT)

    def parse_complete_response(self, raw: Mapping[str, Any]) -> ConnectorResult:
        raise UnsupportedFlow(self.name, Flow.COMPLETE_REDIRECT)


def require(connector: Connector, flow: Flow) -> None:
    if flow not in connector.capabilities:
        raise UnsupportedFlow(connector.name, flow)


def idempotency_key(payment_id: uuid.UUID, attempt_no: int) -> str:
    """One key per attempt, derived from our own ids (the provider may ignore it: localstripe)."""
    return f"paygate-{payment_id}-{attempt_no}"


def operation_key(payment_id: uuid.UUID, kind: str) -> str:
    """A payment is captured or voided at most once: one key per payment and kind."""
    return f"paygate-{payment_id}-{kind}"


def refund_key(refund_id: uuid.UUID) -> str:
    return f"paygate-refund-{refund_id}"


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


def as_int(value: Any) -> int | None:
    """A provider's amount field, read defensively (missing, null or not a number → None)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def as_uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None
