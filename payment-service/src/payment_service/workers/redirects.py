"""Completing redirect payments (PayPal, SSLCommerz) when the customer or the provider comes back.

A redirect payment waits in `requires_action` until its payer approved at the provider. Then —
on the return route, on PayPal's CHECKOUT.ORDER.APPROVED, or on SSLCommerz's IPN — we ask the
provider to finish it (PayPal: capture or authorise the order; SSLCommerz: verify the signed
notification and confirm it with the validation API, amount, currency and tran_id compared),
after no transaction is open, and apply the answer in one unit of work, guarded to move only a
payment that still requires action.

Why this cannot charge twice without a durable attempt row first: PayPal captures (or
authorises) an order at most once — a second call is refused `ORDER_ALREADY_CAPTURED`, and the
same `PayPal-Request-Id` (`paygate-<payment>-complete`) replays the first answer — and an
SSLCommerz confirmation moves no money at all. Whichever of the return, the webhook and the IPN
arrives second finds the payment moved and changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from paygate_common.db import unit_of_work
from payment_service.connectors.base import (
    CompleteContext,
    Connector,
    ProviderTransport,
    ProviderUnavailable,
    operation_key,
)
from payment_service.domain import payments as domain
from payment_service.domain.states import PaymentState
from payment_service.settings import Settings
from payment_service.store import payments as store
from payment_service.store.payments import PaymentRow

log = logging.getLogger("payment_service.redirects")

S = PaymentState
# Retries of a completion whose outcome was unknown (same idempotency key), seconds apart.
RETRY_DELAYS = (0.2, 0.5, 1.0)


class ReturnMismatch(Exception):
    """The callback names another provider object than the payment's: nothing is done."""


class RedirectCompleter:
    """`complete(payment_id, …)`: finish a redirect payment once, whoever asks first."""

    def __init__(
        self,
        *,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        providers: Mapping[str, tuple[Connector, ProviderTransport]],
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.providers = providers

    async def complete(
        self,
        payment_id: uuid.UUID,
        *,
        provider: str,
        reference: str | None = None,
        callback: Mapping[str, str] | None = None,
        event_id: str | None = None,
    ) -> PaymentRow | None:
        """The payment after completing it (None: not ours, or not this provider's).

        Raises `ReturnMismatch` for a reference that is not the payment's, the transport's
        `WebhookRejected` for a notification that fails verification (nothing applied), and
        `ProviderUnavailable` when the provider could not be asked (nothing applied; the
        webhook or IPN is retried by the provider, the customer may reload).
        """
        async with unit_of_work(self.sessionmaker) as session:
            payment = await store.get_payment(session, payment_id)
        if payment is None or payment.provider != provider:
            return None
        if reference is not None and reference != payment.provider_reference:
            raise ReturnMismatch(f"{reference} is not payment {payment_id}'s provider object")
        if payment.status != S.REQUIRES_ACTION or not payment.provider_reference:
            return payment  # finished already (or not yet created at the provider)
        connector, transport = self.providers[provider]
        request = connector.build_complete_request(
            CompleteContext(
                payment_id=payment.id,
                provider_reference=payment.provider_reference,
                amount=payment.amount,
                currency=payment.currency,
                capture_method=payment.capture_method,
                idempotency_key=operation_key(payment.id, "complete"),
                callback=dict(callback or {}),
            )
        )
        raw = None
        for delay in (*RETRY_DELAYS, None):
            try:
                raw = await transport.send(request)
                break
            except ProviderUnavailable as exc:
                # Often the other path (the webhook, the return) completing it at this moment:
                # PayPal answers PREVIOUS_REQUEST_IN_PROGRESS. The same key is safe to resend.
                if delay is None:
                    log.warning(
                        "payment %s: completing at %s failed: %s", payment_id, provider, exc
                    )
                    raise
                await asyncio.sleep(delay)
                async with unit_of_work(self.sessionmaker) as session:
                    current = await store.get_payment(session, payment_id)
                if current is not None and current.status != S.REQUIRES_ACTION:
                    return current
        assert raw is not None
        result = connector.parse_complete_response(raw)
        async with unit_of_work(self.sessionmaker) as session:
            if event_id is not None:
                if not await store.record_webhook_event(
                    session, event_id=event_id, provider=provider, event_type="completion"
                ):
                    log.info("payment %s: notification %s applied before", payment_id, event_id)
                    return await store.get_payment(session, payment_id)
                await store.link_webhook_event(session, event_id, payment_id)
            row = await domain.apply_result(
                session,
                payment_id,
                result,
                from_states=(S.REQUIRES_ACTION,),
                capture_window_seconds=self.settings.capture_window_seconds,
            )
            if row is None:
                row = await store.get_payment(session, payment_id)
                log.info(
                    "payment %s: %s says %s; payment stays %s",
                    payment_id,
                    provider,
                    result.raw_status,
                    row.status if row else None,
                )
            else:
                log.info("payment %s completed at %s: %s", payment_id, provider, row.status)
            return row
