"""PayPal in the connector contract: Orders v2 translation (`PayPalConnector`) and its transport.

The flow: authorise = create an order (intent CAPTURE for `automatic`, AUTHORIZE for `manual`)
→ `requires_action` with the payer approval link → the payer approves and comes back (our
return route) or PayPal says so (CHECKOUT.ORDER.APPROVED) → `complete` = capture or authorise
the order → `succeeded` / `requires_capture`. Capture and void act on the order's
authorisation, refunds on its capture; the transport finds those by re-reading the order, so
the only PayPal id we keep is the order id (`provider_reference`).

Why a lost create-order never leads to a double charge although PayPal cannot be searched by
our id (`find_payment` answers None): an order moves no money until its payer approves it AND
we capture it, and nobody ever saw the approval link of an order whose answer we lost.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from paygate_common.events import PaymentStatus, RefundStatus
from paygate_common.money import minimum_charge
from payment_service.connectors.base import (
    CaptureContext,
    CompleteContext,
    ConnectorResult,
    Flow,
    PaymentContext,
    ProviderRequest,
    ProviderUnavailable,
    RefundContext,
    RefundResult,
    VoidContext,
    WebhookUpdate,
    as_uuid,
    safe_next_action,
)
from payment_service.connectors.paypal import protocol, webhooks
from payment_service.connectors.paypal.client import PayPalClient
from payment_service.connectors.provider_http import (
    PaymentOutcome,
    ProviderHttpError,
    ProviderUnreachable,
    RefundOutcome,
    UnknownProviderStatus,
)

log = logging.getLogger("payment_service.connectors.paypal")

# Orders still waiting for their payer: nothing is held at PayPal, so a void is ours alone.
_AWAITING_PAYER = ("CREATED", "SAVED", "PAYER_ACTION_REQUIRED")


def _error(error: ProviderHttpError) -> dict[str, Any]:
    return {
        "error": {
            "code": error.code,
            "message": error.message,
            "status": error.status_code,
            "body": dict(error.body),
        }
    }


def _failure(raw: Mapping[str, Any]) -> ConnectorResult | None:
    error = raw.get("error")
    if not isinstance(error, Mapping):
        return None
    return ConnectorResult(
        PaymentStatus.FAILED,
        failure_code=str(error.get("code") or "provider_rejected").lower()[:64],
        failure_message=str(error.get("message") or "PayPal refused the request")[:255],
        raw_status="error",
    )


def _result(outcome: PaymentOutcome) -> ConnectorResult:
    # The payment's own status stops at captured: refunds are tracked as refunds (an order
    # re-read after a refund must not move the payment without its refund rows).
    status = outcome.status
    if status in (PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED):
        status = PaymentStatus.SUCCEEDED
    return ConnectorResult(
        status,
        provider_reference=outcome.provider_reference or None,
        failure_code=outcome.failure_code,
        failure_message=outcome.failure_message,
        next_action=safe_next_action(outcome.next_action),
        raw_status=outcome.raw_status,
        metadata={"payment_id": outcome.merchant_reference} if outcome.merchant_reference else {},
        amount_capturable=outcome.amount_capturable or None,
        amount_captured=outcome.amount_captured or None,
    )


def _refund_result(outcome: RefundOutcome) -> RefundResult:
    return RefundResult(
        outcome.status,
        provider_reference=outcome.provider_refund_id,
        amount=outcome.amount,
        failure_code=outcome.failure_code,
        refund_id=as_uuid(outcome.raw.get("invoice_id")),
        raw_status=outcome.raw_status,
    )


class PayPalConnector:
    """Orders v2: create (CAPTURE / AUTHORIZE intent), complete after approval, capture an
    authorisation in part or in full, void it, refund captures in parts; verified webhooks."""

    name = "paypal"
    capabilities = frozenset(Flow)
    needs_payment_method = False

    def minimum_amount(self, currency: str) -> int:
        return minimum_charge(currency)

    # -- authorise = create the order ---------------------------------------------------------

    def build_authorize_request(self, payment: PaymentContext) -> ProviderRequest:
        if not payment.callback_url:
            raise ValueError("a PayPal order needs our return URL")
        call = protocol.build_create_order(
            protocol.OrderCreate(
                payment_id=payment.payment_id,
                amount=payment.amount,
                currency=payment.currency,
                capture_method="manual" if payment.capture_method == "manual" else "automatic",
                return_url=payment.callback_url,
                cancel_url=f"{payment.callback_url}?cancelled=1",
                idempotency_key=payment.idempotency_key,
                description=payment.description,
            )
        )
        return ProviderRequest(
            operation="orders.create",
            params={"call": call},
            idempotency_key=payment.idempotency_key,
        )

    def parse_authorize_response(self, raw: Mapping[str, Any]) -> ConnectorResult:
        failed = _failure(raw)
        if failed is not None:
            return failed
        return _result(protocol.parse_order(raw))

    # -- complete after the payer's approval ---------------------------------------------------

    def build_complete_request(self, complete: CompleteContext) -> ProviderRequest:
        return ProviderRequest(
            operation="orders.complete",
            params={"intent": "AUTHORIZE" if complete.capture_method == "manual" else "CAPTURE"},
            idempotency_key=complete.idempotency_key,
            target=complete.provider_reference,
        )

    def parse_complete_response(self, raw: Mapping[str, Any]) -> ConnectorResult:
        error = raw.get("error")
        if isinstance(error, Mapping):
            declined = protocol.decline_outcome(
                ProviderHttpError(
                    int(error.get("status") or 422),
                    str(error.get("code")),
                    str(error.get("message") or ""),
                    body=error.get("body") or {},
                ),
                raw.get("order") if isinstance(raw.get("order"), Mapping) else None,
            )
            if declined is not None:
                return _result(declined)
        return self.parse_authorize_response(raw)

    # -- capture and void of the authorisation ------------------------------------------------

    def build_capture_request(self, capture: CaptureContext) -> ProviderRequest:
        return ProviderRequest(
            operation="authorizations.capture",
            params={"amount": capture.amount, "currency": capture.currency},
            idempotency_key=capture.idempotency_key,
            target=capture.provider_reference,
        )

    def parse_capture_response(self, raw: Mapping[str, Any]) -> ConnectorResult:
        return self.parse_authorize_response(raw)

    def build_void_request(self, void: VoidContext) -> ProviderRequest:
        return ProviderRequest(
            operation="authorizations.void",
            params={},
            idempotency_key=void.idempotency_key,
            target=void.provider_reference,
        )

    def parse_void_response(self, raw: Mapping[str, Any]) -> ConnectorResult:
        failed = _failure(raw)
        if failed is not None:
            return failed
        status = str(raw.get("status") or "")
        if status in _AWAITING_PAYER:
            # Not approved: PayPal holds nothing, and we will never capture this order (the
            # return route only completes a payment that still requires action).
            return ConnectorResult(
                PaymentStatus.CANCELLED, provider_reference=str(raw.get("id")), raw_status=status
            )
        if status == "APPROVED":
            # The payer approved meanwhile and is on the way back: refused, the payment goes on.
            return ConnectorResult(
                PaymentStatus.REQUIRES_ACTION,
                provider_reference=str(raw.get("id")),
                failure_code="payer_already_approved",
                failure_message="The payer approved the order; capture or refund it instead",
                raw_status=status,
            )
        return self.parse_authorize_response(raw)

    # -- refunds ------------------------------------------------------------------------------

    def build_refund_request(self, refund: RefundContext) -> ProviderRequest:
        return ProviderRequest(
            operation="captures.refund",
            params={
                "amount": refund.amount,
                "currency": refund.currency,
                "refund_id": refund.refund_id,
            },
            idempotency_key=refund.idempotency_key,
            target=refund.provider_reference,
        )

    def parse_refund_response(self, raw: Mapping[str, Any]) -> RefundResult:
        error = raw.get("error")
        if isinstance(error, Mapping):
            return RefundResult(
                RefundStatus.FAILED,
                failure_code=str(error.get("code") or "refund_rejected").lower()[:64],
                failure_message=str(error.get("message") or "PayPal refused the refund")[:255],
                raw_status="error",
            )
        return _refund_result(protocol.parse_refund(raw))

    # -- webhooks -----------------------------------------------------------------------------

    def parse_webhook(self, event: Mapping[str, Any]) -> WebhookUpdate | None:
        """What a verified event says. The webhook route re-reads the order before applying
        anything: events arrive out of order, and a capture event does not show refunds."""
        try:
            notice = webhooks.map_event(event)
        except (KeyError, TypeError):
            return None
        if notice.payment_status is None and notice.refund_status is None:
            return None
        payment = (
            ConnectorResult(
                notice.payment_status,
                provider_reference=notice.order_id,
                raw_status=notice.event_type,
            )
            if notice.payment_status is not None
            else None
        )
        refunds: tuple[RefundResult, ...] = ()
        if notice.refund_status is not None and notice.resource_type == "refund":
            try:
                refunds = (_refund_result(protocol.parse_refund(notice.event["resource"])),)
            except (UnknownProviderStatus, KeyError, TypeError):
                refunds = ()
        return WebhookUpdate(
            provider_reference=notice.order_id,
            payment_id=as_uuid(notice.merchant_reference),
            payment=payment,
            refunds=refunds,
        )


class PayPalTransport:
    """PayPalClient behind the transport contract; re-reads the order after every mutation so
    that one answer (the order) carries the payment's whole state."""

    def __init__(self, client: PayPalClient) -> None:
        self.client = client

    async def send(self, request: ProviderRequest) -> Mapping[str, Any]:
        try:
            return await self._send(request)
        except ProviderUnreachable as exc:
            raise ProviderUnavailable(str(exc)) from exc
        except ProviderHttpError as exc:
            return _error(exc)

    async def _send(self, request: ProviderRequest) -> Mapping[str, Any]:
        key = request.idempotency_key
        match request.operation:
            case "orders.create":
                return await self.client.send(request.params["call"])
            case "orders.complete":
                order_id = _target(request)
                build = (
                    protocol.build_authorize_order
                    if request.params["intent"] == "AUTHORIZE"
                    else protocol.build_capture_order
                )
                try:
                    return await self.client.send(build(order_id, idempotency_key=key))
                except ProviderHttpError as exc:
                    order = await self._order(order_id)
                    if exc.code in ("ORDER_ALREADY_CAPTURED", "ORDER_ALREADY_AUTHORIZED"):
                        return order  # completed before (another path): the order says how
                    return {**_error(exc), "order": order}
            case "authorizations.capture":
                order = await self._order(_target(request))
                outcome = protocol.parse_order(order)
                if not outcome.authorization_id:
                    return _missing("AUTHORIZATION_NOT_FOUND", "The order has no authorisation")
                await self.client.send(
                    protocol.build_capture_authorization(
                        outcome.authorization_id,
                        idempotency_key=key,
                        amount=int(request.params["amount"]),
                        currency=str(request.params["currency"]),
                        # paygate's contract: a partial capture releases the rest
                        final_capture=True,
                    )
                )
                return await self._order(_target(request))
            case "authorizations.void":
                order = await self._order(_target(request))
                if str(order.get("status")) in (*_AWAITING_PAYER, "APPROVED"):
                    return order  # nothing authorised at PayPal: the connector decides
                outcome = protocol.parse_order(order)
                if not outcome.authorization_id:
                    return _missing("AUTHORIZATION_NOT_FOUND", "The order has no authorisation")
                await self.client.send(
                    protocol.build_void_authorization(outcome.authorization_id, idempotency_key=key)
                )
                return await self._order(_target(request))
            case "captures.refund":
                capture_id = _refundable_capture(await self._order(_target(request)))
                if capture_id is None:
                    return _missing("CAPTURE_NOT_FOUND", "The order has no capture to refund")
                return await self.client.send(
                    protocol.build_refund_capture(
                        capture_id,
                        idempotency_key=key,
                        amount=int(request.params["amount"]),
                        currency=str(request.params["currency"]),
                        refund_id=request.params["refund_id"],
                    )
                )
            case _:
                raise ValueError(f"unsupported operation {request.operation}")

    async def _order(self, order_id: str) -> dict[str, Any]:
        return await self.client.send(protocol.build_get_order(order_id))

    async def find_payment(
        self, payment_id: uuid.UUID, *, customer: str | None = None
    ) -> Mapping[str, Any] | None:
        """PayPal cannot be searched by our id; see the module docstring for why None is safe."""
        return None

    async def retrieve_payment(self, provider_reference: str) -> Mapping[str, Any]:
        try:
            return await self._order(provider_reference)
        except (ProviderUnreachable, ProviderHttpError) as exc:
            raise ProviderUnavailable(f"order lookup failed: {exc}") from exc

    async def lookup_action(self, query: CompleteContext) -> Mapping[str, Any] | None:
        """The order of a payment still waiting for its payer (`GET /v2/checkout/orders/{id}`);
        None when PayPal no longer has it: an order nobody approved expires (3 hours) and is
        then answered 404 RESOURCE_NOT_FOUND. Nothing was ever charged on such an order, since
        PayPal moves money only when we capture or authorise it."""
        try:
            return await self._order(query.provider_reference)
        except ProviderUnreachable as exc:
            raise ProviderUnavailable(f"order lookup failed: {exc}") from exc
        except ProviderHttpError as exc:
            if exc.status_code == 404:
                return None
            raise ProviderUnavailable(f"order lookup failed: {exc}") from exc

    async def find_refund(
        self,
        refund_id: uuid.UUID,
        *,
        provider_reference: str,
        refund_reference: str | None = None,
    ) -> Mapping[str, Any] | None:
        """The order's refund whose invoice_id is our refund id."""
        order = await self.retrieve_payment(provider_reference)
        units = order.get("purchase_units") or [{}]
        for refund in (units[0].get("payments") or {}).get("refunds") or []:
            if refund.get("invoice_id") == str(refund_id):
                return dict(refund)
        return None

    async def aclose(self) -> None:
        await self.client.aclose()


def _target(request: ProviderRequest) -> str:
    if not request.target:
        raise ValueError(f"{request.operation} needs the PayPal order id")
    return request.target


def _missing(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": 422}}


def _refundable_capture(order: Mapping[str, Any]) -> str | None:
    """The newest capture that still holds money (paygate captures once, so: that one)."""
    units = order.get("purchase_units") or [{}]
    captures = (units[0].get("payments") or {}).get("captures") or []
    for capture in reversed(captures):
        if capture.get("status") in ("COMPLETED", "PARTIALLY_REFUNDED"):
            return str(capture["id"])
    return None
