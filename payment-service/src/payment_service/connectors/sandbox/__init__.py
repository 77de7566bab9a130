"""The sandbox connector: deterministic, in-process, Stripe test-token semantics, no network.

A stand-in provider, not a real one: its "provider side" is two tables of its own
(`sandbox_charges`, `sandbox_refunds`), each write in its own transaction as a remote provider's
would be, so chaos tests can count what it charged and refunded.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from paygate_common.events import PaymentStatus, RefundStatus
from payment_service.connectors.base import (
    CardConnector,
    CardOperations,
    ConnectorResult,
    Flow,
    PaymentContext,
    ProviderRequest,
    ProviderUnavailable,
    RefundContext,
    RefundResult,
    WebhookUpdate,
    as_int,
    as_uuid,
)
from payment_service.store.tables import sandbox_charges, sandbox_refunds

log = logging.getLogger("payment_service.connectors.sandbox")

# Stripe's documented test PaymentMethods and what Stripe does with them; any other token
# succeeds like pm_card_visa.
DECLINING_TOKENS = frozenset({"pm_card_visa_chargeDeclined", "pm_card_chargeCustomerFail"})
AUTHENTICATING_TOKENS = frozenset(
    {"pm_card_threeDSecure2Required", "pm_card_authenticationRequired"}
)
CHALLENGE_URL = "https://sandbox.paygate.invalid/3ds/"


def outcome_for(token: str) -> str:
    """The sandbox provider's decision for a PaymentMethod token."""
    if token in DECLINING_TOKENS:
        return "declined"
    if token in AUTHENTICATING_TOKENS:
        return "challenge"
    return "approved"


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


class SandboxConnector(CardConnector):
    """Translation for the sandbox provider's own (Stripe-like, smaller) charge objects."""

    name = "sandbox"
    # Every card flow but webhooks: the sandbox answers synchronously and sends no events.
    capabilities = frozenset(Flow) - {Flow.WEBHOOKS, Flow.COMPLETE_REDIRECT}
    operations = CardOperations(capture="capture", void="void", refund="refund")

    def build_authorize_request(self, payment: PaymentContext) -> ProviderRequest:
        return ProviderRequest(
            operation="charge",
            params={
                "payment_id": str(payment.payment_id),
                "order_id": str(payment.order_id) if payment.order_id else None,
                "attempt_no": payment.attempt_no,
                "amount": payment.amount,
                "currency": payment.currency,
                "token": payment.payment_method_token,
                "capture_method": payment.capture_method,
            },
            idempotency_key=payment.idempotency_key,
        )

    def parse_authorize_response(self, raw: Mapping[str, Any]) -> ConnectorResult:
        error = raw.get("error")
        if isinstance(error, Mapping):
            return ConnectorResult(
                PaymentStatus.FAILED,
                failure_code=str(error.get("code") or "sandbox_rejected"),
                failure_message=str(error.get("message") or "The sandbox refused the request"),
                raw_status="error",
            )
        reference = raw.get("id")
        outcome = str(raw.get("outcome") or "")
        metadata = {"payment_id": str(raw.get("payment_id") or "")}
        common: dict[str, Any] = {"raw_status": outcome, "metadata": metadata}
        match outcome:
            case "approved":
                return ConnectorResult(
                    PaymentStatus.SUCCEEDED,
                    reference,
                    amount_captured=as_int(raw.get("amount_captured")),
                    **common,
                )
            case "authorized":
                return ConnectorResult(
                    PaymentStatus.REQUIRES_CAPTURE,
                    reference,
                    amount_capturable=as_int(raw.get("amount")),
                    **common,
                )
            case "declined":
                return ConnectorResult(
                    PaymentStatus.FAILED,
                    reference,
                    failure_code="card_declined",
                    decline_code="generic_decline",
                    failure_message="Your card was declined.",
                    **common,
                )
            case "challenge":
                return ConnectorResult(
                    PaymentStatus.REQUIRES_ACTION,
                    reference,
                    next_action={
                        "type": "redirect_to_url",
                        "redirect_to_url": {"url": f"{CHALLENGE_URL}{reference}"},
                    },
                    **common,
                )
            case "processing":
                return ConnectorResult(PaymentStatus.PROCESSING, reference, **common)
            case "cancelled":
                return ConnectorResult(PaymentStatus.CANCELLED, reference, **common)
            case _:
                log.warning("sandbox charge %s has unknown outcome %r", reference, outcome)
                return ConnectorResult(PaymentStatus.PROCESSING, reference, **common)

    def refund_params(self, refund: RefundContext) -> dict[str, Any]:
        return {
            "refund_id": str(refund.refund_id),
            "payment_id": str(refund.payment_id),
            "amount": refund.amount,
        }

    def parse_refund_response(self, raw: Mapping[str, Any]) -> RefundResult:
        error = raw.get("error")
        if isinstance(error, Mapping):
            return RefundResult(
                RefundStatus.FAILED,
                failure_code=str(error.get("code") or "sandbox_rejected"),
                failure_message=str(error.get("message") or "The sandbox refused the refund"),
                raw_status="error",
            )
        status = str(raw.get("status") or "")
        common: dict[str, Any] = {
            "provider_reference": raw.get("id"),
            "amount": as_int(raw.get("amount")),
            "refund_id": as_uuid(raw.get("refund_id")),
            "raw_status": status,
        }
        match status:
            case "succeeded":
                return RefundResult(RefundStatus.SUCCEEDED, **common)
            case "failed":
                return RefundResult(RefundStatus.FAILED, failure_code="refund_failed", **common)
            case _:
                return RefundResult(RefundStatus.PENDING, **common)

    def parse_webhook(self, event: Mapping[str, Any]) -> WebhookUpdate | None:
        # Declared: the sandbox sends no webhooks (Flow.WEBHOOKS is not in its capabilities).
        return None


class SandboxTransport:
    """The sandbox "provider": decides by token, records charges and refunds in its own tables.

    `failure_rate` injects retryable failures, half before the request is recorded (it never
    arrived) and half after (the answer was lost), which is what reconciliation is for.
    """

    def __init__(
        self, *, engine: AsyncEngine, latency_ms: int = 0, failure_rate: float = 0.0
    ) -> None:
        self.engine = engine
        self.latency = latency_ms / 1000
        self.failure_rate = failure_rate
        self._random = random.Random()

    def _fails(self) -> bool:
        return self.failure_rate > 0 and self._random.random() < self.failure_rate

    async def send(self, request: ProviderRequest) -> Mapping[str, Any]:
        if self.latency:
            await asyncio.sleep(self.latency)
        if self._fails():
            raise ProviderUnavailable("sandbox: injected failure before the request")
        async with self.engine.begin() as conn:
            match request.operation:
                case "charge":
                    body = await self._charge(conn, request)
                case "capture":
                    body = await self._capture(conn, request)
                case "void":
                    body = await self._void(conn, request)
                case "refund":
                    body = await self._refund(conn, request)
                case _:
                    raise ValueError(f"unsupported operation {request.operation}")
        if self._fails():
            raise ProviderUnavailable("sandbox: injected failure after the request")
        return body

    async def _charge(self, conn: AsyncConnection, request: ProviderRequest) -> dict[str, Any]:
        params = request.params
        outcome = outcome_for(str(params["token"]))
        if outcome == "approved" and params.get("capture_method") == "manual":
            outcome = "authorized"
        body = {
            "id": "sbx_" + secrets.token_hex(8),
            "object": "sandbox_charge",
            "outcome": outcome,
            "payment_id": params["payment_id"],
            "amount": params["amount"],
            "amount_captured": params["amount"] if outcome == "approved" else 0,
            "currency": params["currency"],
        }
        await conn.execute(
            insert(sandbox_charges).values(
                id=body["id"],
                payment_id=uuid.UUID(params["payment_id"]),
                order_id=uuid.UUID(params["order_id"]) if params.get("order_id") else None,
                attempt_no=params["attempt_no"],
                idempotency_key=request.idempotency_key,
                amount=params["amount"],
                currency=params["currency"],
                status=outcome,
                body=body,
            )
        )
        return body

    async def _locked_charge(self, conn: AsyncConnection, reference: str | None) -> Any:
        return (
            await conn.execute(
                select(sandbox_charges).where(sandbox_charges.c.id == reference).with_for_update()
            )
        ).first()

    async def _set(self, conn: AsyncConnection, charge: Any, **changes: Any) -> dict[str, Any]:
        body = {**charge.body, **changes}
        await conn.execute(
            update(sandbox_charges)
            .where(sandbox_charges.c.id == charge.id)
            .values(status=body["outcome"], body=body)
        )
        return body

    async def _capture(self, conn: AsyncConnection, request: ProviderRequest) -> dict[str, Any]:
        charge = await self._locked_charge(conn, request.target)
        if charge is None:
            return _error("resource_missing", "No such charge")
        amount = int(request.params["amount"])
        if charge.status != "authorized" or not 0 < amount <= charge.amount:
            return _error("charge_not_capturable", f"The charge is {charge.status}")
        return await self._set(conn, charge, outcome="approved", amount_captured=amount)

    async def _void(self, conn: AsyncConnection, request: ProviderRequest) -> dict[str, Any]:
        charge = await self._locked_charge(conn, request.target)
        if charge is None:
            return _error("resource_missing", "No such charge")
        if charge.status not in ("authorized", "challenge", "processing"):
            return _error("charge_not_voidable", f"The charge is {charge.status}")
        return await self._set(conn, charge, outcome="cancelled", amount_captured=0)

    async def _refund(self, conn: AsyncConnection, request: ProviderRequest) -> dict[str, Any]:
        charge = await self._locked_charge(conn, request.target)
        if charge is None:
            return _error("resource_missing", "No such charge")
        if charge.status != "approved":
            return _error("charge_not_refundable", f"The charge is {charge.status}")
        already = (
            await conn.execute(
                select(func.coalesce(func.sum(sandbox_refunds.c.amount), 0)).where(
                    sandbox_refunds.c.charge_id == charge.id
                )
            )
        ).scalar_one()
        amount = int(request.params["amount"])
        captured = int(charge.body.get("amount_captured") or charge.amount)
        if already + amount > captured:
            # A real provider refuses this too; our own reservation should never let it happen.
            return _error("amount_too_large", "The refunds would exceed the captured amount")
        body = {
            "id": "sbxre_" + secrets.token_hex(8),
            "object": "sandbox_refund",
            "status": "succeeded",
            "charge_id": charge.id,
            "refund_id": request.params["refund_id"],
            "payment_id": request.params["payment_id"],
            "amount": amount,
        }
        await conn.execute(
            insert(sandbox_refunds).values(
                id=body["id"],
                charge_id=charge.id,
                payment_id=uuid.UUID(request.params["payment_id"]),
                refund_id=uuid.UUID(request.params["refund_id"]),
                idempotency_key=request.idempotency_key,
                amount=amount,
                body=body,
            )
        )
        return body

    async def find_payment(
        self, payment_id: uuid.UUID, *, customer: str | None = None
    ) -> Mapping[str, Any] | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(sandbox_charges.c.body)
                    .where(sandbox_charges.c.payment_id == payment_id)
                    .order_by(sandbox_charges.c.created_at)
                    .limit(1)
                )
            ).first()
        return dict(row.body) if row else None

    async def retrieve_payment(self, provider_reference: str) -> Mapping[str, Any]:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(sandbox_charges.c.body).where(sandbox_charges.c.id == provider_reference)
                )
            ).first()
        if row is None:
            raise ProviderUnavailable(f"sandbox has no charge {provider_reference}")
        return dict(row.body)

    async def find_refund(
        self,
        refund_id: uuid.UUID,
        *,
        provider_reference: str,
        refund_reference: str | None = None,
    ) -> Mapping[str, Any] | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(sandbox_refunds.c.body).where(sandbox_refunds.c.refund_id == refund_id)
                )
            ).first()
        return dict(row.body) if row else None

    async def aclose(self) -> None:
        return None


__all__ = ["SandboxConnector", "SandboxTransport", "outcome_for"]
