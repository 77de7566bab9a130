"""SSLCommerz v4 wire protocol: session init, IPN verify_sign, validation and refund APIs; no I/O.

SSLCommerz has no authorise-then-capture: a session is paid in one step, so there is nothing
to build for authorize, capture or void (`UNSUPPORTED_OPERATIONS`; the connector answers 422
`unsupported_by_provider`).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from paygate_common.events import PaymentStatus, RefundStatus
from payment_service.connectors.provider_http import (
    PaymentOutcome,
    ProviderCall,
    ProviderHttpError,
    RefundOutcome,
    UnknownProviderStatus,
    UnsupportedByProvider,
    WebhookRejected,
    decimal_to_minor,
    minor_to_decimal,
)

PROVIDER = "sslcommerz"
UNSUPPORTED_OPERATIONS = frozenset({"authorize", "capture", "void"})
SESSION_PATH = "/gwprocess/v4/api.php"
VALIDATION_PATH = "/validator/api/validationserverAPI.php"
MERCHANT_API_PATH = "/validator/api/merchantTransIDvalidationAPI.php"


def unsupported(operation: str) -> UnsupportedByProvider:
    """What a manual-capture request gets: SSLCommerz charges at once or not at all."""
    return UnsupportedByProvider(PROVIDER, operation)


class TransactionStatus(StrEnum):
    """`status` of an IPN, a validation answer or a transaction query element."""

    VALID = "VALID"
    VALIDATED = "VALIDATED"  # valid, and the validation API was asked before
    PENDING = "PENDING"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    UNATTEMPTED = "UNATTEMPTED"
    EXPIRED = "EXPIRED"
    INVALID_TRANSACTION = "INVALID_TRANSACTION"


class RefundState(StrEnum):
    """`status` of a refund initiation (`success`…) or a refund status query (`refunded`…)."""

    SUCCESS = "success"
    FAILED = "failed"
    PROCESSING = "processing"
    REFUNDED = "refunded"
    CANCELLED = "cancelled"


def _status(value: Any) -> TransactionStatus:
    try:
        return TransactionStatus(str(value).upper())
    except ValueError:
        raise UnknownProviderStatus(f"SSLCommerz status {value!r} is not documented") from None


def transaction_status(status: TransactionStatus) -> PaymentStatus:
    match status:
        case TransactionStatus.VALID | TransactionStatus.VALIDATED:
            return PaymentStatus.SUCCEEDED
        case TransactionStatus.PENDING:
            return PaymentStatus.PROCESSING
        case TransactionStatus.FAILED | TransactionStatus.INVALID_TRANSACTION:
            return PaymentStatus.FAILED
        case TransactionStatus.CANCELLED | TransactionStatus.EXPIRED:
            return PaymentStatus.CANCELLED
        case TransactionStatus.UNATTEMPTED:
            return PaymentStatus.REQUIRES_ACTION


def refund_state(state: RefundState) -> RefundStatus:
    match state:
        case RefundState.REFUNDED:
            return RefundStatus.SUCCEEDED
        # "success" only says SSLCommerz accepted the request; the bank settles it later
        case RefundState.SUCCESS | RefundState.PROCESSING:
            return RefundStatus.PENDING
        case RefundState.FAILED | RefundState.CANCELLED:
            return RefundStatus.FAILED


# --- session init -------------------------------------------------------------------------


@dataclass(frozen=True)
class Customer:
    name: str
    email: str
    phone: str
    address: str = "N/A"
    city: str = "Dhaka"
    postcode: str = "1000"
    country: str = "Bangladesh"


@dataclass(frozen=True)
class SessionCreate:
    """One hosted-payment session for one of our payments (`tran_id` = our payment id)."""

    payment_id: uuid.UUID
    amount: int
    currency: str
    success_url: str
    fail_url: str
    cancel_url: str
    ipn_url: str
    customer: Customer
    product_name: str = "paygate payment"
    product_category: str = "general"
    product_profile: str = "general"
    shipping_method: str = "NO"


def build_session_init(
    session: SessionCreate, *, store_id: str, store_password: str
) -> ProviderCall:
    """`POST /gwprocess/v4/api.php` (form); the answer carries `GatewayPageURL`."""
    c = session.customer
    form = {
        "store_id": store_id,
        "store_passwd": store_password,
        "total_amount": minor_to_decimal(session.amount, session.currency),
        "currency": session.currency.upper(),
        "tran_id": str(session.payment_id),
        "success_url": session.success_url,
        "fail_url": session.fail_url,
        "cancel_url": session.cancel_url,
        "ipn_url": session.ipn_url,
        "cus_name": c.name,
        "cus_email": c.email,
        "cus_add1": c.address,
        "cus_city": c.city,
        "cus_postcode": c.postcode,
        "cus_country": c.country,
        "cus_phone": c.phone,
        "shipping_method": session.shipping_method,
        "num_of_item": "1",
        "product_name": session.product_name[:255],
        "product_category": session.product_category,
        "product_profile": session.product_profile,
        # echoed back in the IPN and the validation answer: a second check of whose it is
        "value_a": str(session.payment_id),
    }
    return ProviderCall("session.init", "POST", SESSION_PATH, form=form)


def parse_session_init(body: Mapping[str, Any], session: SessionCreate) -> PaymentOutcome:
    """A SUCCESS answer → requires_action with the gateway page; FAILED → ProviderHttpError."""
    if str(body.get("status", "")).upper() != "SUCCESS" or not body.get("GatewayPageURL"):
        raise ProviderHttpError(
            400,
            "session_init_failed",
            str(body.get("failedreason") or "no GatewayPageURL"),
            body=body,
        )
    return PaymentOutcome(
        status=PaymentStatus.REQUIRES_ACTION,
        provider_reference=str(session.payment_id),
        raw_status="SESSION_CREATED",
        amount=session.amount,
        currency=session.currency.lower(),
        next_action={
            "type": "redirect_to_url",
            "redirect_to_url": {
                "url": str(body["GatewayPageURL"]),
                "return_url": session.success_url,
            },
        },
        merchant_reference=str(session.payment_id),
        raw={k: v for k, v in body.items() if k in ("status", "sessionkey", "GatewayPageURL")},
    )


# --- IPN / redirect verification --------------------------------------------------------------


def verify_sign(fields: Mapping[str, str], store_password: str) -> str:
    """MD5 of `k=v&…` over the `verify_key` fields plus `store_passwd=md5(password)`, sorted."""
    names = [n for n in str(fields.get("verify_key", "")).split(",") if n]
    data = {name: str(fields.get(name, "")) for name in names}
    data["store_passwd"] = hashlib.md5(store_password.encode()).hexdigest()  # noqa: S324 - the protocol's scheme
    message = "&".join(f"{k}={v}" for k, v in sorted(data.items()))
    return hashlib.md5(message.encode()).hexdigest()  # noqa: S324 - the protocol's scheme


# Fields that must be covered by the signature for the IPN to say anything about money.
_MUST_BE_SIGNED = frozenset({"tran_id", "amount", "currency", "status", "val_id"})


def check_ipn_signature(fields: Mapping[str, str], store_password: str) -> None:
    """Raise `WebhookRejected` unless `verify_sign` matches and covers the money fields."""
    given = str(fields.get("verify_sign", ""))
    if not given or not fields.get("verify_key"):
        raise WebhookRejected("missing_signature")
    if not hmac.compare_digest(given.lower(), verify_sign(fields, store_password)):
        raise WebhookRejected("signature_mismatch")
    signed = set(str(fields["verify_key"]).split(","))
    status = str(fields.get("status", "")).upper()
    needed = _MUST_BE_SIGNED if status in ("VALID", "VALIDATED") else {"tran_id", "status"}
    if not needed <= signed:
        raise WebhookRejected("money_fields_not_signed", ",".join(sorted(needed - signed)))


@dataclass(frozen=True)
class ExpectedPayment:
    """What we asked SSLCommerz for; a paid answer must match it exactly."""

    payment_id: uuid.UUID
    amount: int
    currency: str


def _paid_amount(fields: Mapping[str, Any]) -> tuple[int, str]:
    """The amount in the currency we initiated with (`currency_type`/`currency_amount`):
    a non-BDT session settles in BDT, so `amount`/`currency` are the converted figures."""
    currency = str(fields.get("currency_type") or fields.get("currency") or "").lower()
    value = fields.get("currency_amount") or fields.get("amount") or "0"
    return decimal_to_minor(value, currency), currency


def check_matches(fields: Mapping[str, Any], expected: ExpectedPayment) -> None:
    """tran_id, amount and currency must be ours, or nothing is marked paid."""
    if str(fields.get("tran_id")) != str(expected.payment_id):
        raise WebhookRejected("tran_id_mismatch", str(fields.get("tran_id")))
    try:
        amount, currency = _paid_amount(fields)
    except (UnknownProviderStatus, KeyError) as exc:
        raise WebhookRejected("amount_unreadable", str(exc)) from exc
    if currency != expected.currency.lower():
        raise WebhookRejected("currency_mismatch", currency)
    if amount != expected.amount:
        raise WebhookRejected("amount_mismatch", f"{amount} != {expected.amount}")


def ipn_outcome(fields: Mapping[str, Any], expected: ExpectedPayment) -> PaymentOutcome:
    """A verified IPN (or validation answer) → our state; VALID only after `check_matches`."""
    status = _status(fields.get("status"))
    mapped = transaction_status(status)
    if mapped is PaymentStatus.SUCCEEDED:
        check_matches(fields, expected)
    elif str(fields.get("tran_id")) != str(expected.payment_id):
        raise WebhookRejected("tran_id_mismatch", str(fields.get("tran_id")))
    failure = None if mapped is PaymentStatus.SUCCEEDED else status.value.lower()
    return PaymentOutcome(
        status=mapped,
        provider_reference=str(
            fields.get("bank_tran_id") or fields.get("val_id") or expected.payment_id
        ),
        raw_status=status.value,
        amount=expected.amount,
        currency=expected.currency.lower(),
        amount_captured=expected.amount if mapped is PaymentStatus.SUCCEEDED else 0,
        failure_code=failure if mapped is PaymentStatus.FAILED else None,
        failure_message=str(fields.get("error") or "") or None,
        merchant_reference=str(fields.get("tran_id")),
        raw={k: v for k, v in fields.items() if k not in ("verify_sign", "verify_sign_sha2")},
    )


# --- validation API ---------------------------------------------------------------------------


def build_validation(val_id: str, *, store_id: str, store_password: str) -> ProviderCall:
    """`GET /validator/api/validationserverAPI.php?val_id=…`: SSLCommerz's own word on a payment."""
    return ProviderCall(
        "validation",
        "GET",
        VALIDATION_PATH,
        params={
            "val_id": val_id,
            "store_id": store_id,
            "store_passwd": store_password,
            "v": "1",
            "format": "json",
        },
    )


def parse_validation(body: Mapping[str, Any], expected: ExpectedPayment) -> PaymentOutcome:
    """The validation answer must itself be VALID/VALIDATED and match our payment."""
    status = _status(body.get("status"))
    if status not in (TransactionStatus.VALID, TransactionStatus.VALIDATED):
        raise WebhookRejected("validation_refused", status.value)
    return ipn_outcome(body, expected)


def build_transaction_query(
    payment_id: uuid.UUID, *, store_id: str, store_password: str
) -> ProviderCall:
    """`GET …merchantTransIDvalidationAPI.php?tran_id=…`: what SSLCommerz holds for our id."""
    return ProviderCall(
        "transaction.query",
        "GET",
        MERCHANT_API_PATH,
        params={
            "tran_id": str(payment_id),
            "store_id": store_id,
            "store_passwd": store_password,
            "format": "json",
        },
    )


def parse_transaction_query(
    body: Mapping[str, Any], expected: ExpectedPayment
) -> PaymentOutcome | None:
    """The best element for our payment (a paid one wins), or None if SSLCommerz has none."""
    _api_connect(body)
    elements = [
        e for e in body.get("element") or [] if str(e.get("tran_id")) == str(expected.payment_id)
    ]
    if not elements:
        return None
    paid = [e for e in elements if str(e.get("status", "")).upper() in ("VALID", "VALIDATED")]
    return ipn_outcome(paid[0] if paid else elements[0], expected)


# --- refunds --------------------------------------------------------------------------------


def build_refund(
    *,
    bank_tran_id: str,
    amount: int,
    currency: str,
    refund_id: uuid.UUID,
    remarks: str,
    store_id: str,
    store_password: str,
) -> ProviderCall:
    """`GET …merchantTransIDvalidationAPI.php?bank_tran_id=…&refund_amount=…&refe_id=…`.

    `refe_id` is our refund id: SSLCommerz refuses a second refund with the same one, which is
    what makes a retried refund safe.
    """
    return ProviderCall(
        "refund.initiate",
        "GET",
        MERCHANT_API_PATH,
        params={
            "bank_tran_id": bank_tran_id,
            "refund_amount": minor_to_decimal(amount, currency),
            "refund_remarks": (remarks or "refund")[:255],
            "refe_id": str(refund_id),
            "store_id": store_id,
            "store_passwd": store_password,
            "v": "1",
            "format": "json",
        },
        idempotency_key=str(refund_id),
    )


def build_refund_query(refund_ref_id: str, *, store_id: str, store_password: str) -> ProviderCall:
    return ProviderCall(
        "refund.query",
        "GET",
        MERCHANT_API_PATH,
        params={
            "refund_ref_id": refund_ref_id,
            "store_id": store_id,
            "store_passwd": store_password,
            "format": "json",
        },
    )


def _api_connect(body: Mapping[str, Any]) -> None:
    connect = str(body.get("APIConnect", ""))
    if connect != "DONE":
        raise ProviderHttpError(
            400,
            connect.lower() or "api_connect_failed",
            str(body.get("errorReason") or connect),
            body=body,
        )


def _refund_state(value: Any) -> RefundState:
    try:
        return RefundState(str(value).lower())
    except ValueError:
        raise UnknownProviderStatus(
            f"SSLCommerz refund status {value!r} is not documented"
        ) from None


def parse_refund(
    body: Mapping[str, Any], *, amount: int | None = None, currency: str | None = None
) -> RefundOutcome:
    """A refund initiation or status answer; `refund_ref_id` is SSLCommerz's refund id."""
    _api_connect(body)
    state = _refund_state(body.get("status"))
    mapped = refund_state(state)
    return RefundOutcome(
        status=mapped,
        provider_refund_id=str(body.get("refund_ref_id") or ""),
        raw_status=state.value,
        amount=amount,
        currency=currency.lower() if currency else None,
        failure_code="refund_failed" if mapped is RefundStatus.FAILED else None,
        failure_message=str(body.get("errorReason") or "") or None,
        raw=body,
    )
