"""PayPal Orders v2 / Payments v2 wire protocol: request builders and response parsers, no I/O."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, TypeVar

from paygate_common.events import PaymentStatus, RefundStatus
from payment_service.connectors.provider_http import (
    CaptureOutcome,
    PaymentOutcome,
    ProviderCall,
    ProviderHttpError,
    RefundOutcome,
    UnknownProviderStatus,
    decimal_to_minor,
    minor_to_decimal,
    status_after_refunds,
)

PROVIDER = "paypal"
# Prefer: return=representation makes every mutating call answer with the full object, so
# one response is enough to map the state (PayPal's default is a minimal body).
_REPRESENTATION = {"Prefer": "return=representation"}


class OrderStatus(StrEnum):
    CREATED = "CREATED"
    SAVED = "SAVED"
    APPROVED = "APPROVED"
    VOIDED = "VOIDED"
    COMPLETED = "COMPLETED"
    PAYER_ACTION_REQUIRED = "PAYER_ACTION_REQUIRED"


class AuthorizationStatus(StrEnum):
    CREATED = "CREATED"
    CAPTURED = "CAPTURED"
    DENIED = "DENIED"
    PARTIALLY_CAPTURED = "PARTIALLY_CAPTURED"
    VOIDED = "VOIDED"
    PENDING = "PENDING"
    EXPIRED = "EXPIRED"


class CaptureStatus(StrEnum):
    COMPLETED = "COMPLETED"
    DECLINED = "DECLINED"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    PENDING = "PENDING"
    REFUNDED = "REFUNDED"
    FAILED = "FAILED"


class PayPalRefundStatus(StrEnum):
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    PENDING = "PENDING"
    COMPLETED = "COMPLETED"


_E = TypeVar("_E", bound=StrEnum)


def _enum(kind: type[_E], value: Any) -> _E:
    try:
        return kind(str(value))
    except ValueError:
        raise UnknownProviderStatus(f"PayPal {kind.__name__} {value!r} is not documented") from None


# --- request builders -------------------------------------------------------------------


@dataclass(frozen=True)
class OrderCreate:
    """What paygate asks PayPal for: one purchase unit carrying our payment id."""

    payment_id: uuid.UUID
    amount: int
    currency: str
    capture_method: Literal["automatic", "manual"]
    return_url: str
    cancel_url: str
    idempotency_key: str
    description: str | None = None
    brand_name: str | None = None


def money(amount: int, currency: str) -> dict[str, str]:
    return {"currency_code": currency.upper(), "value": minor_to_decimal(amount, currency)}


def build_create_order(order: OrderCreate) -> ProviderCall:
    """`POST /v2/checkout/orders`: automatic → intent CAPTURE, manual → intent AUTHORIZE."""
    unit: dict[str, Any] = {
        "reference_id": "default",
        "custom_id": str(order.payment_id),
        "invoice_id": str(order.payment_id),
        "amount": money(order.amount, order.currency),
    }
    if order.description:
        unit["description"] = order.description[:127]
    experience: dict[str, Any] = {
        "return_url": order.return_url,
        "cancel_url": order.cancel_url,
        "user_action": "PAY_NOW",
        "shipping_preference": "NO_SHIPPING",
    }
    if order.brand_name:
        experience["brand_name"] = order.brand_name[:127]
    return ProviderCall(
        operation="orders.create",
        method="POST",
        path="/v2/checkout/orders",
        json={
            "intent": "CAPTURE" if order.capture_method == "automatic" else "AUTHORIZE",
            "purchase_units": [unit],
            "payment_source": {"paypal": {"experience_context": experience}},
        },
        headers=_REPRESENTATION,
        idempotency_key=order.idempotency_key,
    )


def build_get_order(order_id: str) -> ProviderCall:
    return ProviderCall("orders.get", "GET", f"/v2/checkout/orders/{_id(order_id)}")


def build_capture_order(order_id: str, *, idempotency_key: str) -> ProviderCall:
    """`POST /v2/checkout/orders/{id}/capture`: an approved CAPTURE-intent order is charged."""
    return ProviderCall(
        "orders.capture",
        "POST",
        f"/v2/checkout/orders/{_id(order_id)}/capture",
        json={},
        headers=_REPRESENTATION,
        idempotency_key=idempotency_key,
    )


def build_authorize_order(order_id: str, *, idempotency_key: str) -> ProviderCall:
    """`POST /v2/checkout/orders/{id}/authorize`: an approved AUTHORIZE-intent order is held."""
    return ProviderCall(
        "orders.authorize",
        "POST",
        f"/v2/checkout/orders/{_id(order_id)}/authorize",
        json={},
        headers=_REPRESENTATION,
        idempotency_key=idempotency_key,
    )


def build_capture_authorization(
    authorization_id: str,
    *,
    idempotency_key: str,
    amount: int | None = None,
    currency: str | None = None,
    final_capture: bool = True,
    invoice_id: str | None = None,
) -> ProviderCall:
    """`POST /v2/payments/authorizations/{id}/capture`; no amount = the whole remainder.

    `final_capture=True` releases what is left of the authorisation (paygate's contract:
    a partial capture releases the rest); `False` keeps it capturable.
    """
    body: dict[str, Any] = {"final_capture": final_capture}
    if amount is not None:
        if currency is None:
            raise ValueError("a partial capture needs its currency")
        body["amount"] = money(amount, currency)
    if invoice_id:
        body["invoice_id"] = invoice_id
    return ProviderCall(
        "authorizations.capture",
        "POST",
        f"/v2/payments/authorizations/{_id(authorization_id)}/capture",
        json=body,
        headers=_REPRESENTATION,
        idempotency_key=idempotency_key,
    )


def build_void_authorization(authorization_id: str, *, idempotency_key: str) -> ProviderCall:
    """`POST /v2/payments/authorizations/{id}/void`: releases what has not been captured."""
    return ProviderCall(
        "authorizations.void",
        "POST",
        f"/v2/payments/authorizations/{_id(authorization_id)}/void",
        # no body, but PayPal wants the JSON content type on every POST
        headers={**_REPRESENTATION, "Content-Type": "application/json"},
        idempotency_key=idempotency_key,
    )


def build_get_authorization(authorization_id: str) -> ProviderCall:
    return ProviderCall(
        "authorizations.get", "GET", f"/v2/payments/authorizations/{_id(authorization_id)}"
    )


def build_get_capture(capture_id: str) -> ProviderCall:
    return ProviderCall("captures.get", "GET", f"/v2/payments/captures/{_id(capture_id)}")


def build_refund_capture(
    capture_id: str,
    *,
    idempotency_key: str,
    amount: int | None = None,
    currency: str | None = None,
    refund_id: uuid.UUID | None = None,
    note_to_payer: str | None = None,
) -> ProviderCall:
    """`POST /v2/payments/captures/{id}/refund`; no amount = what is left of the capture."""
    body: dict[str, Any] = {}
    if amount is not None:
        if currency is None:
            raise ValueError("a partial refund needs its currency")
        body["amount"] = money(amount, currency)
    if refund_id is not None:
        # invoice_id, not custom_id: the refund keeps the capture's custom_id (our payment id)
        body["invoice_id"] = str(refund_id)
    if note_to_payer:
        body["note_to_payer"] = note_to_payer[:255]
    return ProviderCall(
        "captures.refund",
        "POST",
        f"/v2/payments/captures/{_id(capture_id)}/refund",
        json=body,
        headers=_REPRESENTATION,
        idempotency_key=idempotency_key,
    )


def build_get_refund(refund_id: str) -> ProviderCall:
    return ProviderCall("refunds.get", "GET", f"/v2/payments/refunds/{_id(refund_id)}")


def _id(value: str) -> str:
    # provider ids go into a path: refuse anything that could change the path
    if not value or not all(c.isalnum() or c in "-_" for c in value):
        raise ValueError(f"not a PayPal id: {value!r}")
    return value


# --- response parsers -------------------------------------------------------------------


def _amount(obj: Mapping[str, Any]) -> tuple[int, str]:
    amount = obj.get("amount") or {}
    currency = str(amount.get("currency_code", "")).lower()
    return decimal_to_minor(amount.get("value", "0"), currency), currency


def approval_url(order: Mapping[str, Any]) -> str | None:
    """The payer's approval link: `payer-action` (payment_source flow) or `approve` (legacy);
    a decline's error body names it `redirect`."""
    links = order.get("links") or []
    for rel in ("payer-action", "approve", "redirect"):
        for link in links:
            if link.get("rel") == rel and link.get("href"):
                return str(link["href"])
    return None


def _payments(order: Mapping[str, Any]) -> Mapping[str, Any]:
    units = order.get("purchase_units") or [{}]
    return units[0].get("payments") or {}


def capture_status(status: CaptureStatus) -> PaymentStatus:
    match status:
        case CaptureStatus.COMPLETED:
            return PaymentStatus.SUCCEEDED
        case CaptureStatus.PENDING:
            return PaymentStatus.PROCESSING
        case CaptureStatus.DECLINED | CaptureStatus.FAILED:
            return PaymentStatus.FAILED
        case CaptureStatus.PARTIALLY_REFUNDED:
            return PaymentStatus.PARTIALLY_REFUNDED
        case CaptureStatus.REFUNDED:
            return PaymentStatus.REFUNDED


def refund_status(status: PayPalRefundStatus) -> RefundStatus:
    match status:
        case PayPalRefundStatus.COMPLETED:
            return RefundStatus.SUCCEEDED
        case PayPalRefundStatus.PENDING:
            return RefundStatus.PENDING
        case PayPalRefundStatus.FAILED | PayPalRefundStatus.CANCELLED:
            return RefundStatus.FAILED


_MONEY_MOVED = {CaptureStatus.COMPLETED, CaptureStatus.PARTIALLY_REFUNDED, CaptureStatus.REFUNDED}


def _completed_order_status(
    intent: str,
    authorization: Mapping[str, Any] | None,
    captures: Iterable[Mapping[str, Any]],
    captured: int,
    refunded: int,
) -> tuple[PaymentStatus, str | None]:
    """Status of a COMPLETED order, from what its captures and authorisation say."""
    if captured > 0:
        return status_after_refunds(captured, refunded), None
    capture_states = [_enum(CaptureStatus, c.get("status")) for c in captures]
    if CaptureStatus.PENDING in capture_states:
        return PaymentStatus.PROCESSING, None
    if capture_states:
        return PaymentStatus.FAILED, "capture_declined"
    if intent == "AUTHORIZE" and authorization is not None:
        match _enum(AuthorizationStatus, authorization.get("status")):
            case AuthorizationStatus.CREATED | AuthorizationStatus.PARTIALLY_CAPTURED:
                return PaymentStatus.REQUIRES_CAPTURE, None
            case AuthorizationStatus.PENDING:
                return PaymentStatus.PROCESSING, None
            case AuthorizationStatus.DENIED:
                return PaymentStatus.FAILED, "authorization_denied"
            case AuthorizationStatus.VOIDED | AuthorizationStatus.EXPIRED:
                return PaymentStatus.CANCELLED, None
            case AuthorizationStatus.CAPTURED:
                # captured in full, but the capture has not shown up in the order yet
                return PaymentStatus.PROCESSING, None
    return PaymentStatus.PROCESSING, None


def parse_order(order: Mapping[str, Any]) -> PaymentOutcome:
    """An order (create/get/capture/authorize response) → our payment state and amounts."""
    status = _enum(OrderStatus, order.get("status"))
    intent = str(order.get("intent", "CAPTURE"))
    units = order.get("purchase_units") or [{}]
    unit = units[0]
    amount: int | None
    currency: str | None
    amount, currency = _amount(unit) if unit.get("amount") else (None, None)
    payments = _payments(order)
    captures = list(payments.get("captures") or [])
    authorizations = list(payments.get("authorizations") or [])
    refunds = list(payments.get("refunds") or [])
    captured = sum(
        _amount(c)[0] for c in captures if _enum(CaptureStatus, c.get("status")) in _MONEY_MOVED
    )
    refunded = sum(
        _amount(r)[0]
        for r in refunds
        if _enum(PayPalRefundStatus, r.get("status")) is PayPalRefundStatus.COMPLETED
    )
    authorization = authorizations[0] if authorizations else None
    capturable = 0
    if authorization is not None and _enum(AuthorizationStatus, authorization.get("status")) in (
        AuthorizationStatus.CREATED,
        AuthorizationStatus.PARTIALLY_CAPTURED,
    ):
        capturable = max(_amount(authorization)[0] - captured, 0)

    next_action = None
    follow_up: Literal["capture_order", "authorize_order"] | None = None
    failure_code: str | None = None
    match status:
        case OrderStatus.CREATED | OrderStatus.SAVED | OrderStatus.PAYER_ACTION_REQUIRED:
            mapped = PaymentStatus.REQUIRES_ACTION
            url = approval_url(order)
            if url:
                next_action = {"type": "redirect_to_url", "redirect_to_url": {"url": url}}
        case OrderStatus.APPROVED:
            # the payer said yes; PayPal moves no money until we capture or authorise
            mapped = PaymentStatus.PROCESSING
            follow_up = "authorize_order" if intent == "AUTHORIZE" else "capture_order"
        case OrderStatus.VOIDED:
            mapped = PaymentStatus.CANCELLED
        case OrderStatus.COMPLETED:
            mapped, failure_code = _completed_order_status(
                intent, authorization, captures, captured, refunded
            )
    return PaymentOutcome(
        status=mapped,
        provider_reference=str(order["id"]),
        raw_status=status.value,
        amount=amount,
        currency=currency,
        amount_capturable=capturable,
        amount_captured=captured,
        amount_refunded=refunded,
        next_action=next_action,
        failure_code=failure_code,
        follow_up=follow_up,
        authorization_id=str(authorization["id"]) if authorization else None,
        capture_ids=tuple(str(c["id"]) for c in captures),
        merchant_reference=unit.get("custom_id"),
        raw=order,
    )


def parse_capture(capture: Mapping[str, Any]) -> CaptureOutcome:
    status = _enum(CaptureStatus, capture.get("status"))
    amount, currency = _amount(capture)
    return CaptureOutcome(
        capture_id=str(capture["id"]),
        status=capture_status(status),
        raw_status=status.value,
        amount=amount,
        currency=currency,
        final_capture=bool(capture.get("final_capture", False)),
        raw=capture,
    )


def parse_refund(refund: Mapping[str, Any]) -> RefundOutcome:
    status = _enum(PayPalRefundStatus, refund.get("status"))
    amount, currency = _amount(refund) if refund.get("amount") else (None, None)
    reason = (refund.get("status_details") or {}).get("reason")
    return RefundOutcome(
        status=refund_status(status),
        provider_refund_id=str(refund["id"]),
        raw_status=status.value,
        amount=amount,
        currency=currency,
        failure_code=str(reason).lower()
        if reason and status is not PayPalRefundStatus.COMPLETED
        else None,
        raw=refund,
    )


def parse_error(status_code: int, body: Mapping[str, Any]) -> ProviderHttpError:
    """PayPal's error body `{name, message, debug_id, details: [{issue, description}]}`.

    The stable code is the first detail's `issue` (INSTRUMENT_DECLINED, ORDER_NOT_APPROVED…),
    else the error `name`; OAuth errors carry `error` instead.
    """
    details = body.get("details") or []
    issue = details[0].get("issue") if details and isinstance(details[0], Mapping) else None
    code = str(issue or body.get("name") or body.get("error") or f"http_{status_code}")
    message = str(
        (details[0].get("description") if issue else None)
        or body.get("message")
        or body.get("error_description")
        or ""
    )
    return ProviderHttpError(status_code, code, message, body=body)


# Issues after which the payer can still finish by going back to the approval link.
_PAYER_CAN_RETRY = {"INSTRUMENT_DECLINED", "PAYER_ACTION_REQUIRED"}
# Issues that end the payment for good.
_PAYMENT_REFUSED = {
    "TRANSACTION_REFUSED",
    "PAYER_CANNOT_PAY",
    "PAYEE_BLOCKED_TRANSACTION",
    "COMPLIANCE_VIOLATION",
    "MAX_NUMBER_OF_PAYMENT_ATTEMPTS_EXCEEDED",
    "AUTHORIZATION_DENIED",
}


def decline_outcome(
    error: ProviderHttpError, order: Mapping[str, Any] | None = None
) -> PaymentOutcome | None:
    """A 422 decline from capture/authorize as a payment state, or None if it is not one.

    INSTRUMENT_DECLINED leaves the order APPROVED-but-unpaid: PayPal's advice is to send the
    payer back to the approval link, so it maps to requires_action with that link.
    """
    order_id = str((order or {}).get("id", ""))
    if error.code in _PAYER_CAN_RETRY:
        url = approval_url(error.body) or approval_url(order or {})
        return PaymentOutcome(
            status=PaymentStatus.REQUIRES_ACTION,
            provider_reference=order_id,
            raw_status=error.code,
            next_action={"type": "redirect_to_url", "redirect_to_url": {"url": url}}
            if url
            else None,
            failure_code=error.code.lower(),
            failure_message=error.message,
        )
    if error.code in _PAYMENT_REFUSED:
        return PaymentOutcome(
            status=PaymentStatus.FAILED,
            provider_reference=order_id,
            raw_status=error.code,
            failure_code=error.code.lower(),
            failure_message=error.message,
        )
    return None
