"""Stripe translation: PaymentIntent create params out, PaymentIntent or error in, status mapped."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from paygate_common.events import PaymentStatus
from payment_service.connectors.base import (
    ConnectorResult,
    PaymentContext,
    ProviderRequest,
    safe_next_action,
)

log = logging.getLogger("payment_service.connectors.stripe")

GENERIC_FAILURE_MESSAGE = "The payment provider declined the payment"
MAX_MESSAGE_CHARS = 255


def _short(text: Any) -> str | None:
    return str(text)[:MAX_MESSAGE_CHARS] if text else None


class StripeConnector:
    """Maps our payment to a confirmed, automatically captured, off-session PaymentIntent."""

    name = "stripe"

    def build_authorize_request(self, payment: PaymentContext) -> ProviderRequest:
        params: dict[str, Any] = {
            "amount": payment.amount,
            "currency": payment.currency,
            "payment_method": payment.payment_method_token,
            "confirm": True,
            # The customer is not on the page: we charge a saved method (merchant-initiated).
            "off_session": True,
            # Explicit, so `requires_capture` can only mean something unexpected happened.
            "capture_method": "automatic",
            # Reconciliation finds the PaymentIntent of a lost attempt by these.
            "metadata": {
                "payment_id": str(payment.payment_id),
                "order_id": str(payment.order_id),
                "attempt": str(payment.attempt_no),
            },
        }
        if payment.provider_customer_id:
            params["customer"] = payment.provider_customer_id
        return ProviderRequest(
            operation="payment_intents.create",
            params=params,
            idempotency_key=payment.idempotency_key,
        )

    def parse_authorize_response(self, raw: Mapping[str, Any]) -> ConnectorResult:
        error = raw.get("error")
        if isinstance(error, Mapping):
            return self._parse_error(error)
        return self._parse_payment_intent(raw)

    def _parse_payment_intent(self, pi: Mapping[str, Any]) -> ConnectorResult:
        reference = pi.get("id")
        status = str(pi.get("status") or "")
        metadata = {str(k): str(v) for k, v in (pi.get("metadata") or {}).items()}
        common: dict[str, Any] = {
            "provider_reference": reference,
            "raw_status": status,
            "metadata": metadata,
        }
        match status:
            case "succeeded":
                return ConnectorResult(PaymentStatus.SUCCEEDED, **common)
            case "requires_action":
                action = safe_next_action(pi.get("next_action")) or {"type": "unknown"}
                return ConnectorResult(PaymentStatus.REQUIRES_ACTION, next_action=action, **common)
            case "processing":
                # The charge is under way (e.g. bank debits); a webhook tells how it ended.
                return ConnectorResult(PaymentStatus.PENDING, **common)
            case "requires_payment_method":
                # A failed confirmation (decline, failed 3-D Secure) leaves the intent here.
                last = pi.get("last_payment_error") or {}
                return ConnectorResult(
                    PaymentStatus.FAILED,
                    failure_code=_short(last.get("code")) or "payment_failed",
                    decline_code=_short(last.get("decline_code")),
                    failure_message=_short(last.get("message")) or GENERIC_FAILURE_MESSAGE,
                    **common,
                )
            case "requires_capture":
                # We confirm with capture_method=automatic, so money is authorised but not
                # captured only if something outside us changed the intent. It is not paid:
                # stay pending until a webhook (or an operator's capture) settles it.
                log.warning("PaymentIntent %s is requires_capture; not treating as paid", reference)
                return ConnectorResult(PaymentStatus.PENDING, **common)
            case "requires_confirmation":
                # We always create with confirm=true; an unconfirmed intent charges nobody yet.
                log.warning("PaymentIntent %s is requires_confirmation", reference)
                return ConnectorResult(PaymentStatus.PENDING, **common)
            case "canceled":
                return ConnectorResult(
                    PaymentStatus.CANCELLED,
                    failure_code=_short(pi.get("cancellation_reason")),
                    **common,
                )
            case _:
                log.warning("PaymentIntent %s has unknown status %r", reference, status)
                return ConnectorResult(PaymentStatus.PENDING, **common)

    def _parse_error(self, error: Mapping[str, Any]) -> ConnectorResult:
        code = _short(error.get("code"))
        pi = error.get("payment_intent")
        reference = pi.get("id") if isinstance(pi, Mapping) else None
        kind = str(error.get("type") or "")
        if code == "authentication_required":
            # Off-session charge that needs the customer: bring them back on-session.
            return ConnectorResult(
                PaymentStatus.REQUIRES_ACTION,
                provider_reference=reference,
                next_action={"type": "authentication_required"},
                raw_status="error",
            )
        # Stripe documents card-error messages as safe to show to the customer; other errors'
        # messages may describe our integration, so they get a generic one.
        message = _short(error.get("message")) if kind in ("card_error", "") else None
        return ConnectorResult(
            PaymentStatus.FAILED,
            provider_reference=reference,
            failure_code=code or ("card_declined" if kind == "card_error" else "provider_rejected"),
            decline_code=_short(error.get("decline_code")),
            failure_message=message or GENERIC_FAILURE_MESSAGE,
            raw_status="error",
        )
