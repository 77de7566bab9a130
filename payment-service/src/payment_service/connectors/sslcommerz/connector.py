"""SSLCommerz in the connector contract: v4 sessions, confirmed IPNs, refunds; no manual capture.

authorise = a hosted session (`tran_id` = our payment id) → `requires_action` with the
`GatewayPageURL`; the customer pays there; the IPN (or the browser's POST to our success URL)
is `complete`: the transport checks `verify_sign` AND asks the validation API, comparing
amount, currency and `tran_id` with our payment, before the connector may say `succeeded`.
SSLCommerz charges in one step: manual capture, partial capture and void are not offered
(422 `unsupported_by_provider`). Our `provider_reference` stays the `tran_id`; the transport
looks the `bank_tran_id` a refund needs up by it.
"""

from __future__ import annotations

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
    UnsupportedFlow,
    VoidContext,
    WebhookUpdate,
    as_int,
    as_uuid,
)
from payment_service.connectors.provider_http import (
    ProviderHttpError,
    ProviderUnreachable,
    UnknownProviderStatus,
)
from payment_service.connectors.sslcommerz import protocol
from payment_service.connectors.sslcommerz.client import SSLCommerzClient
from payment_service.connectors.sslcommerz.protocol import (
    Customer,
    ExpectedPayment,
    SessionCreate,
)

# SSLCommerz requires a customer on every session; paygate does not pass the user's contact
# details to a provider, so the session names this placeholder (the gateway page asks the
# payer for what the card network needs).
PLACEHOLDER_CUSTOMER = Customer(name="paygate customer", email="customer@example.com", phone="0")


class SSLCommerzConnector:
    """Hosted sessions paid in one step; IPNs double-checked; refunds in parts."""

    name = "sslcommerz"
    capabilities = frozenset(Flow) - {Flow.MANUAL_CAPTURE, Flow.PARTIAL_CAPTURE, Flow.VOID}
    needs_payment_method = False

    def minimum_amount(self, currency: str) -> int:
        # BDT is not in Stripe's minimum table; SSLCommerz's own floor is 10.00 BDT.
        return 1000 if currency.lower() == "bdt" else minimum_charge(currency)

    def build_authorize_request(self, payment: PaymentContext) -> ProviderRequest:
        if not payment.callback_url or not payment.notify_url:
            raise ValueError("an SSLCommerz session needs our return and IPN URLs")
        session = SessionCreate(
            payment_id=payment.payment_id,
            amount=payment.amount,
            currency=payment.currency,
            success_url=f"{payment.callback_url}/success",
            fail_url=f"{payment.callback_url}/fail",
            cancel_url=f"{payment.callback_url}/cancel",
            ipn_url=payment.notify_url,
            customer=PLACEHOLDER_CUSTOMER,
            product_name=(payment.description or "paygate payment")[:255],
        )
        return ProviderRequest(
            operation="session.init",
            params={"session": session},
            idempotency_key=payment.idempotency_key,
        )

    def parse_authorize_response(self, raw: Mapping[str, Any]) -> ConnectorResult:
        """A session-init answer, or a transaction element (look-ups, validations)."""
        error = raw.get("error")
        if isinstance(error, Mapping):
            return ConnectorResult(
                PaymentStatus.FAILED,
                failure_code=str(error.get("code") or "provider_rejected")[:64],
                failure_message=str(error.get("message") or "SSLCommerz refused the session")[:255],
                raw_status="error",
            )
        if "sessionkey" in raw or "GatewayPageURL" in raw:
            url = raw.get("GatewayPageURL")
            if str(raw.get("status", "")).upper() != "SUCCESS" or not url:
                return ConnectorResult(
                    PaymentStatus.FAILED,
                    failure_code="session_init_failed",
                    failure_message=str(raw.get("failedreason") or "No gateway page")[:255],
                    raw_status=str(raw.get("status")),
                )
            return ConnectorResult(
                PaymentStatus.REQUIRES_ACTION,
                provider_reference=str(raw.get("tran_id") or "") or None,
                next_action={"type": "redirect_to_url", "redirect_to_url": {"url": str(url)}},
                raw_status="SESSION_CREATED",
            )
        return self._transaction(raw)

    def _transaction(self, raw: Mapping[str, Any]) -> ConnectorResult:
        status = protocol.transaction_status(protocol._status(raw.get("status")))
        return ConnectorResult(
            status,
            provider_reference=str(raw.get("tran_id") or "") or None,
            failure_code=str(raw.get("status")).lower() if status is PaymentStatus.FAILED else None,
            failure_message=str(raw.get("error") or "")[:255] or None,
            raw_status=str(raw.get("status")),
            metadata={"payment_id": str(raw.get("tran_id"))},
        )

    def build_complete_request(self, complete: CompleteContext) -> ProviderRequest:
        return ProviderRequest(
            operation="payment.confirm",
            params={
                "fields": dict(complete.callback),
                "expected": ExpectedPayment(
                    payment_id=complete.payment_id,
                    amount=complete.amount,
                    currency=complete.currency,
                ),
            },
            idempotency_key=complete.idempotency_key,
            target=complete.provider_reference,
        )

    def parse_complete_response(self, raw: Mapping[str, Any]) -> ConnectorResult:
        """A confirmed notification: the transport verified it and matched it with ours."""
        return self.parse_authorize_response(raw)

    def build_capture_request(self, capture: CaptureContext) -> ProviderRequest:
        raise UnsupportedFlow(self.name, Flow.MANUAL_CAPTURE)

    def parse_capture_response(self, raw: Mapping[str, Any]) -> ConnectorResult:
        raise UnsupportedFlow(self.name, Flow.MANUAL_CAPTURE)

    def build_void_request(self, void: VoidContext) -> ProviderRequest:
        raise UnsupportedFlow(self.name, Flow.VOID)

    def parse_void_response(self, raw: Mapping[str, Any]) -> ConnectorResult:
        raise UnsupportedFlow(self.name, Flow.VOID)

    def build_refund_request(self, refund: RefundContext) -> ProviderRequest:
        return ProviderRequest(
            operation="refund.initiate",
            params={
                "amount": refund.amount,
                "currency": refund.currency,
                "refund_id": refund.refund_id,
                "remarks": refund.reason or "refund",
            },
            idempotency_key=refund.idempotency_key,
            target=refund.provider_reference,
        )

    def parse_refund_response(self, raw: Mapping[str, Any]) -> RefundResult:
        error = raw.get("error")
        if isinstance(error, Mapping):
            return RefundResult(
                RefundStatus.FAILED,
                failure_code=str(error.get("code") or "refund_rejected")[:64],
                failure_message=str(error.get("message") or "SSLCommerz refused the refund")[:255],
                raw_status="error",
            )
        outcome = protocol.parse_refund(raw)
        return RefundResult(
            outcome.status,
            provider_reference=outcome.provider_refund_id or None,
            amount=as_int(raw.get("paygate_amount")),
            failure_code=outcome.failure_code,
            failure_message=outcome.failure_message,
            refund_id=as_uuid(raw.get("refe_id")),
            raw_status=outcome.raw_status,
        )

    def parse_webhook(self, event: Mapping[str, Any]) -> WebhookUpdate | None:
        """An IPN's claim, before verification: whose payment, and what it says. The IPN route
        applies only what `complete` confirms (signature, validation API, amount)."""
        payment_id = as_uuid(event.get("tran_id"))
        if payment_id is None:
            return None
        try:
            claimed = self._transaction(event)
        except UnknownProviderStatus:
            return None
        return WebhookUpdate(
            provider_reference=str(payment_id), payment_id=payment_id, payment=claimed
        )


class SSLCommerzTransport:
    """SSLCommerzClient behind the transport contract."""

    def __init__(self, client: SSLCommerzClient) -> None:
        self.client = client

    async def send(self, request: ProviderRequest) -> Mapping[str, Any]:
        """Raises `WebhookRejected` for a notification that fails its checks (payment.confirm)."""
        try:
            return await self._send(request)
        except ProviderUnreachable as exc:
            raise ProviderUnavailable(str(exc)) from exc
        except ProviderHttpError as exc:
            return {"error": {"code": exc.code, "message": exc.message}}

    async def _send(self, request: ProviderRequest) -> Mapping[str, Any]:
        match request.operation:
            case "session.init":
                session: SessionCreate = request.params["session"]
                call = protocol.build_session_init(session, **self.client._credentials)
                body = await self.client.send(call)
                return {**body, "tran_id": str(session.payment_id)}
            case "payment.confirm":
                expected: ExpectedPayment = request.params["expected"]
                outcome = await self.client.confirm_payment(request.params["fields"], expected)
                return {**outcome.raw, "tran_id": str(expected.payment_id)}
            case "refund.initiate":
                tran_id = _target(request)
                bank_tran_id = await self._bank_tran_id(tran_id)
                if bank_tran_id is None:
                    return {"error": {"code": "transaction_not_found", "message": tran_id}}
                refund_id: uuid.UUID = request.params["refund_id"]
                amount = int(request.params["amount"])
                initiated = await self.client.send(
                    protocol.build_refund(
                        bank_tran_id=bank_tran_id,
                        amount=amount,
                        currency=str(request.params["currency"]),
                        refund_id=refund_id,
                        remarks=str(request.params["remarks"]),
                        **self.client._credentials,
                    )
                )
                answer = initiated
                reference = initiated.get("refund_ref_id")
                if str(initiated.get("status", "")).lower() == "success" and reference:
                    # Accepted; ask at once whether the bank settled it (else it stays pending
                    # and the operation sender asks again later).
                    answer = await self._refund_status(str(reference))
                return {**answer, "refe_id": str(refund_id), "paygate_amount": amount}
            case _:
                raise ValueError(f"unsupported operation {request.operation}")

    async def _elements(self, tran_id: str) -> list[dict[str, Any]]:
        call = protocol.build_transaction_query(uuid.UUID(tran_id), **self.client._credentials)
        body = await self.client.send(call)
        if str(body.get("APIConnect")) != "DONE":
            raise ProviderUnreachable(f"transaction query: {body.get('APIConnect')}")
        return [e for e in body.get("element") or [] if str(e.get("tran_id")) == tran_id]

    async def _bank_tran_id(self, tran_id: str) -> str | None:
        for element in await self._elements(tran_id):
            if str(element.get("status", "")).upper() in ("VALID", "VALIDATED"):
                return str(element.get("bank_tran_id") or "") or None
        return None

    async def _refund_status(self, refund_ref_id: str) -> dict[str, Any]:
        return await self.client.send(
            protocol.build_refund_query(refund_ref_id, **self.client._credentials)
        )

    async def find_payment(
        self, payment_id: uuid.UUID, *, customer: str | None = None
    ) -> Mapping[str, Any] | None:
        """A session whose answer was lost was never shown to anyone: nothing to adopt.
        (A paid one is found by `retrieve_payment`, by our id, which is its tran_id.)"""
        return None

    async def retrieve_payment(self, provider_reference: str) -> Mapping[str, Any]:
        """What SSLCommerz holds for our payment id (a paid transaction wins)."""
        try:
            elements = await self._elements(provider_reference)
        except (ProviderUnreachable, ProviderHttpError, ValueError) as exc:
            raise ProviderUnavailable(f"transaction lookup failed: {exc}") from exc
        paid = [e for e in elements if str(e.get("status", "")).upper() in ("VALID", "VALIDATED")]
        if paid or elements:
            return (paid or elements)[0]
        return {"status": "UNATTEMPTED", "tran_id": provider_reference}

    async def lookup_action(self, query: CompleteContext) -> Mapping[str, Any]:
        """What SSLCommerz says about a payment still waiting for its payer: the transaction
        query by tran_id, and for a paid transaction the validation API's own word on its
        val_id (amount, currency and tran_id compared with ours; a mismatch raises
        `WebhookRejected`) — the IPN's checks, without the IPN."""
        expected = ExpectedPayment(
            payment_id=query.payment_id, amount=query.amount, currency=query.currency
        )
        try:
            elements = await self._elements(query.provider_reference)
            paid = [
                e for e in elements if str(e.get("status", "")).upper() in ("VALID", "VALIDATED")
            ]
            if paid:
                val_id = paid[0].get("val_id")
                if not val_id:
                    raise ProviderUnreachable("a paid transaction without its val_id")
                outcome = await self.client.validate(str(val_id), expected)
                return {**outcome.raw, "tran_id": query.provider_reference}
        except (ProviderUnreachable, ProviderHttpError, ValueError) as exc:
            raise ProviderUnavailable(f"transaction lookup failed: {exc}") from exc
        if elements:
            return elements[0]
        return {"status": "UNATTEMPTED", "tran_id": query.provider_reference}

    async def find_refund(
        self,
        refund_id: uuid.UUID,
        *,
        provider_reference: str,
        refund_reference: str | None = None,
    ) -> Mapping[str, Any] | None:
        """SSLCommerz is asked about a refund by its own `refund_ref_id` only."""
        if not refund_reference:
            return None
        try:
            answer = await self._refund_status(refund_reference)
        except (ProviderUnreachable, ProviderHttpError) as exc:
            raise ProviderUnavailable(f"refund lookup failed: {exc}") from exc
        if str(answer.get("refund_ref_id") or "") != refund_reference:
            return None
        return {**answer, "refe_id": str(refund_id)}

    async def aclose(self) -> None:
        await self.client.aclose()


def _target(request: ProviderRequest) -> str:
    if not request.target:
        raise ValueError(f"{request.operation} needs our tran_id")
    return request.target
