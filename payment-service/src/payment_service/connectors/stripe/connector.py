"""Stripe translation: PaymentIntent and Refund params out; PaymentIntents, Refunds, errors and events in."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from paygate_common.events import PaymentStatus, RefundStatus
from payment_service.connectors.base import (
    CardConnector,
    CardOperations,
    ConnectorResult,
    Flow,
    PaymentContext,
    ProviderRequest,
    RefundContext,
    RefundResult,
    WebhookUpdate,
    as_int,
    as_uuid,
    safe_next_action,
)

log = logging.getLogger("payment_service.connectors.stripe")

GENERIC_FAILURE_MESSAGE = "The payment provider declined the payment"
MAX_MESSAGE_CHARS = 255

PAYMENT_INTENT_EVENTS = frozenset(
    {
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.requires_action",
        "payment_intent.processing",
        "payment_intent.canceled",
        "payment_intent.amount_capturable_updated",
    }
)
REFUND_EVENTS = frozenset({"charge.refunded", "charge.refund.updated", "refund.updated"})


def _short(text: Any) -> str | None:
    return str(text)[:MAX_MESSAGE_CHARS] if text else None


class StripeConnector(CardConnector):
    """Maps our payments to confirmed PaymentIntents (automatic or manual capture) and Refunds."""

    name = "stripe"
    capabilities = frozenset(Flow) - {Flow.COMPLETE_REDIRECT}
    # No cancellation_reason on a void: localstripe refuses any parameter on cancel.
    operations = CardOperations(
        capture="payment_intents.capture",
        void="payment_intents.cancel",
        refund="refunds.create",
        capture_amount="amount_to_capture",
    )

    # -- authorise ---------------------------------------------------------------------------

    def build_authorize_request(self, payment: PaymentContext) -> ProviderRequest:
        metadata = {"payment_id": str(payment.payment_id), "attempt": str(payment.attempt_no)}
        if payment.order_id is not None:
            metadata["order_id"] = str(payment.order_id)
        params: dict[str, Any] = {
            "amount": payment.amount,
            "currency": payment.currency,
            "payment_method": payment.payment_method_token,
            "confirm": True,
            # The customer is not on the page: we charge a saved method (merchant-initiated).
            "off_session": True,
            # Explicit: `requires_capture` is then expected exactly for manual payments.
            "capture_method": payment.capture_method,
            # Reconciliation finds the PaymentIntent of a lost attempt by these.
            "metadata": metadata,
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

    # -- refunds (capture and void: `CardConnector`, by `operations`) --------------------------

    def refund_params(self, refund: RefundContext) -> dict[str, Any]:
        # Our free-text reason travels in metadata: Stripe's `reason` is a closed enum (and
        # localstripe refuses the parameter).
        metadata = {"refund_id": str(refund.refund_id), "payment_id": str(refund.payment_id)}
        if refund.reason:
            metadata["reason"] = refund.reason[:500]
        return {
            "payment_intent": refund.provider_reference,
            "amount": refund.amount,
            "metadata": metadata,
        }

    def parse_refund_response(self, raw: Mapping[str, Any]) -> RefundResult:
        error = raw.get("error")
        if isinstance(error, Mapping):
            return RefundResult(
                RefundStatus.FAILED,
                failure_code=_short(error.get("code")) or "refund_rejected",
                failure_message=_short(error.get("message")) or "The provider refused the refund",
                raw_status="error",
            )
        reference = raw.get("id")
        status = str(raw.get("status") or "")
        common: dict[str, Any] = {
            "provider_reference": str(reference) if reference else None,
            "amount": as_int(raw.get("amount")),
            "refund_id": as_uuid((raw.get("metadata") or {}).get("refund_id")),
            "raw_status": status,
        }
        match status:
            case "succeeded":
                return RefundResult(RefundStatus.SUCCEEDED, **common)
            case "pending" | "requires_action":
                return RefundResult(RefundStatus.PENDING, **common)
            case "failed" | "canceled":
                return RefundResult(
                    RefundStatus.FAILED,
                    failure_code=_short(raw.get("failure_reason")) or f"refund_{status}",
                    **common,
                )
            case _:
                log.warning("Refund %s has unknown status %r", reference, status)
                return RefundResult(RefundStatus.PENDING, **common)

    # -- webhooks ----------------------------------------------------------------------------

    def parse_webhook(self, event: Mapping[str, Any]) -> WebhookUpdate | None:
        event_type = str(event.get("type") or "")
        data = event.get("data")
        obj = data.get("object") if isinstance(data, Mapping) else None
        if not isinstance(obj, Mapping):
            return None
        if event_type in PAYMENT_INTENT_EVENTS:
            return WebhookUpdate(
                provider_reference=_short(obj.get("id")),
                payment_id=as_uuid((obj.get("metadata") or {}).get("payment_id")),
                payment=self._parse_payment_intent(obj),
                amount=as_int(obj.get("amount")),
                currency=str(obj.get("currency") or "").lower() or None,
            )
        if event_type == "charge.refunded":
            listed = obj.get("refunds")
            items = listed.get("data") if isinstance(listed, Mapping) else None
            refunds = tuple(
                self.parse_refund_response(r) for r in (items or []) if isinstance(r, Mapping)
            )
            return WebhookUpdate(
                provider_reference=_short(obj.get("payment_intent")),
                payment_id=as_uuid((obj.get("metadata") or {}).get("payment_id")),
                refunds=refunds,
            )
        if event_type in ("charge.refund.updated", "refund.updated"):
            refund = self.parse_refund_response(obj)
            return WebhookUpdate(
                provider_reference=_short(obj.get("payment_intent")),
                payment_id=as_uuid((obj.get("metadata") or {}).get("payment_id")),
                refunds=(refund,),
            )
        return None

    # -- mapping -----------------------------------------------------------------------------

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
                # localstripe omits amount_received: None means "as requested".
                return ConnectorResult(
                    PaymentStatus.SUCCEEDED,
                    amount_captured=as_int(pi.get("amount_received")),
                    **common,
                )
            case "requires_capture":
                capturable = as_int(pi.get("amount_capturable"))
                return ConnectorResult(
                    PaymentStatus.REQUIRES_CAPTURE,
                    amount_capturable=capturable or as_int(pi.get("amount")),
                    **common,
                )
            case "requires_action":
                action = safe_next_action(pi.get("next_action")) or {"type": "unknown"}
                return ConnectorResult(PaymentStatus.REQUIRES_ACTION, next_action=action, **common)
            case "processing":
                # The charge is under way (e.g. bank debits); a webhook tells how it ended.
                return ConnectorResult(PaymentStatus.PROCESSING, **common)
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
            case "requires_confirmation":
                # We always create with confirm=true; an unconfirmed intent charges nobody yet.
                log.warning("PaymentIntent %s is requires_confirmation", reference)
                return ConnectorResult(PaymentStatus.PROCESSING, **common)
            case "canceled":
                return ConnectorResult(
                    PaymentStatus.CANCELLED,
                    failure_code=_short(pi.get("cancellation_reason")),
                    **common,
                )
            case _:
                log.warning("PaymentIntent %s has unknown status %r", reference, status)
                return ConnectorResult(PaymentStatus.PROCESSING, **common)

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
