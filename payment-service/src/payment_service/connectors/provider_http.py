"""What the PayPal and SSLCommerz clients share: calls, outcomes, decimal amounts, HTTP errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import httpx

from paygate_common.events import PaymentStatus, RefundStatus
from paygate_common.money import CURRENCY_EXPONENTS


@dataclass(frozen=True)
class ProviderCall:
    """One provider HTTP request, built without I/O; the transport adds credentials.

    `operation` names the call for logs and metrics (`orders.create`, `session.init`).
    `idempotency_key` goes into the provider's idempotency header where it has one.
    """

    operation: str
    method: Literal["GET", "POST"]
    path: str
    json: Mapping[str, Any] | None = None
    form: Mapping[str, str] | None = None
    params: Mapping[str, str] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    idempotency_key: str | None = None


@dataclass(frozen=True)
class PaymentOutcome:
    """A provider's payment object in paygate's vocabulary (amounts in minor units).

    `follow_up` names the call the core must make next without waiting for anyone
    (PayPal: an approved order still has to be captured or authorised by us).
    """

    status: PaymentStatus
    provider_reference: str
    raw_status: str
    amount: int | None = None
    currency: str | None = None
    amount_capturable: int = 0
    amount_captured: int = 0
    amount_refunded: int = 0
    next_action: dict[str, Any] | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    follow_up: Literal["capture_order", "authorize_order"] | None = None
    authorization_id: str | None = None
    capture_ids: tuple[str, ...] = ()
    # our payment id as the provider echoes it (PayPal custom_id, SSLCommerz tran_id)
    merchant_reference: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class CaptureOutcome:
    """One capture of an authorisation."""

    capture_id: str
    status: PaymentStatus
    raw_status: str
    amount: int
    currency: str
    final_capture: bool
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class RefundOutcome:
    """A provider refund in paygate's vocabulary."""

    status: RefundStatus
    provider_refund_id: str
    raw_status: str
    amount: int | None = None
    currency: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


class ProviderUnreachable(Exception):
    """The call ended without a known outcome (network, timeout, 5xx, 429, request in progress).

    The provider may or may not have acted: retry with the same idempotency key or look the
    object up before deciding anything.
    """


class ProviderHttpError(Exception):
    """The provider answered and refused (4xx): a definite outcome, safe to report."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status_code} {code}: {message}")
        self.status_code = status_code
        self.code = code
        self.message = message
        self.body: Mapping[str, Any] = body or {}


class UnsupportedByProvider(Exception):
    """The provider has no such operation (SSLCommerz has no authorize/capture/void)."""

    code = "unsupported_by_provider"

    def __init__(self, provider: str, operation: str) -> None:
        super().__init__(f"{provider} does not support {operation}")
        self.provider = provider
        self.operation = operation


class UnknownProviderStatus(ValueError):
    """A status string outside the provider's documented enum: never guess what it means."""


class WebhookRejected(Exception):
    """A provider callback that failed verification; `reason` is a stable code for logs."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def minor_to_decimal(amount: int, currency: str) -> str:
    """1999 usd → "19.99"; 500 jpy → "500" (the currency's ISO-4217 exponent)."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise ValueError(f"amount must be a non-negative integer of minor units, got {amount!r}")
    exponent = CURRENCY_EXPONENTS[currency.lower()]
    value = Decimal(amount).scaleb(-exponent)
    return f"{value:.{exponent}f}"


def decimal_to_minor(value: str | int | float, currency: str) -> int:
    """ "19.99" usd → 1999; refuses values finer than the currency's minor unit."""
    exponent = CURRENCY_EXPONENTS[currency.lower()]
    try:
        # str() first: SSLCommerz sometimes sends JSON numbers; never do float arithmetic
        minor = Decimal(str(value).strip()).scaleb(exponent)
        exact = minor == minor.to_integral_value() and minor >= 0
    except (InvalidOperation, ValueError) as exc:
        raise UnknownProviderStatus(f"not an amount in {currency}: {value!r}") from exc
    if not exact:
        raise UnknownProviderStatus(f"not an amount in {currency}: {value!r}")
    return int(minor)


def status_after_refunds(amount_captured: int, amount_refunded: int) -> PaymentStatus:
    """A captured payment's state once refunds are counted."""
    if amount_captured > 0 and amount_refunded >= amount_captured:
        return PaymentStatus.REFUNDED
    if amount_refunded > 0:
        return PaymentStatus.PARTIALLY_REFUNDED
    return PaymentStatus.SUCCEEDED


async def send_http(
    http: httpx.AsyncClient,
    call: ProviderCall,
    *,
    headers: Mapping[str, str],
    params: Mapping[str, str] | None = None,
    form: Mapping[str, str] | None = None,
) -> httpx.Response:
    """Send a call; network trouble, 5xx and 429 become `ProviderUnreachable`, 4xx is returned."""
    try:
        response = await http.request(
            call.method,
            call.path,
            json=call.json,
            data=dict(form if form is not None else call.form or {}) or None,
            params=dict(params if params is not None else call.params or {}) or None,
            headers={**call.headers, **headers},
        )
    except httpx.HTTPError as exc:
        raise ProviderUnreachable(f"{call.operation}: {type(exc).__name__}: {exc}") from exc
    if response.status_code >= 500 or response.status_code == 429:
        raise ProviderUnreachable(f"{call.operation}: HTTP {response.status_code}")
    return response


def json_body(response: httpx.Response, operation: str) -> dict[str, Any]:
    """A 2xx/4xx body as a JSON object; anything else means we cannot know what happened."""
    if not response.content:
        return {}
    try:
        body = response.json()
    except ValueError as exc:
        raise ProviderUnreachable(f"{operation}: HTTP {response.status_code}, not JSON") from exc
    if not isinstance(body, dict):
        raise ProviderUnreachable(f"{operation}: HTTP {response.status_code}, not a JSON object")
    return body
