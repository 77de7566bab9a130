"""The sandbox connector: deterministic, in-process, Stripe test-token semantics, no network."""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from paygate_common.events import PaymentStatus
from payment_service.connectors.base import (
    ConnectorResult,
    PaymentContext,
    ProviderRequest,
    ProviderUnavailable,
)
from payment_service.store.tables import sandbox_charges

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


class SandboxConnector:
    """Translation for the sandbox provider's own (Stripe-like, smaller) charge objects."""

    name = "sandbox"

    def build_authorize_request(self, payment: PaymentContext) -> ProviderRequest:
        return ProviderRequest(
            operation="charge",
            params={
                "payment_id": str(payment.payment_id),
                "order_id": str(payment.order_id),
                "attempt_no": payment.attempt_no,
                "amount": payment.amount,
                "currency": payment.currency,
                "token": payment.payment_method_token,
            },
            idempotency_key=payment.idempotency_key,
        )

    def parse_authorize_response(self, raw: Mapping[str, Any]) -> ConnectorResult:
        reference = raw.get("id")
        outcome = str(raw.get("outcome") or "")
        metadata = {"payment_id": str(raw.get("payment_id") or "")}
        match outcome:
            case "approved":
                return ConnectorResult(
                    PaymentStatus.SUCCEEDED, reference, raw_status=outcome, metadata=metadata
                )
            case "declined":
                return ConnectorResult(
                    PaymentStatus.FAILED,
                    reference,
                    failure_code="card_declined",
                    decline_code="generic_decline",
                    failure_message="Your card was declined.",
                    raw_status=outcome,
                    metadata=metadata,
                )
            case "challenge":
                return ConnectorResult(
                    PaymentStatus.REQUIRES_ACTION,
                    reference,
                    next_action={
                        "type": "redirect_to_url",
                        "redirect_to_url": {"url": f"{CHALLENGE_URL}{reference}"},
                    },
                    raw_status=outcome,
                    metadata=metadata,
                )
            case "processing":
                return ConnectorResult(
                    PaymentStatus.PENDING, reference, raw_status=outcome, metadata=metadata
                )
            case "cancelled":
                return ConnectorResult(
                    PaymentStatus.CANCELLED, reference, raw_status=outcome, metadata=metadata
                )
            case _:
                log.warning("sandbox charge %s has unknown outcome %r", reference, outcome)
                return ConnectorResult(
                    PaymentStatus.PENDING, reference, raw_status=outcome, metadata=metadata
                )


class SandboxTransport:
    """The sandbox "provider": decides by token, records the charge in its own transaction.

    `failure_rate` injects retryable failures, half before the charge is recorded (the request
    never arrived) and half after (the answer was lost), which is what reconciliation is for.
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
        if request.operation != "charge":
            raise ValueError(f"unsupported operation {request.operation}")
        if self.latency:
            await asyncio.sleep(self.latency)
        if self._fails():
            raise ProviderUnavailable("sandbox: injected failure before the charge")
        params = request.params
        body = {
            "id": "sbx_" + secrets.token_hex(8),
            "object": "sandbox_charge",
            "outcome": outcome_for(str(params["token"])),
            "payment_id": params["payment_id"],
            "amount": params["amount"],
            "currency": params["currency"],
        }
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(sandbox_charges).values(
                    id=body["id"],
                    payment_id=uuid.UUID(params["payment_id"]),
                    order_id=uuid.UUID(params["order_id"]),
                    attempt_no=params["attempt_no"],
                    idempotency_key=request.idempotency_key,
                    amount=params["amount"],
                    currency=params["currency"],
                    status=body["outcome"],
                    body=body,
                )
            )
        if self._fails():
            raise ProviderUnavailable("sandbox: injected failure after the charge")
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

    async def aclose(self) -> None:
        return None


__all__ = ["SandboxConnector", "SandboxTransport", "outcome_for"]
