"""The abandoned-redirect sweeper: a payment left in `requires_action` is settled with its provider.

A redirect payment (PayPal, SSLCommerz), a 3-D Secure Stripe payment and a hosted checkout
wait in `requires_action` for their payer. If the payer abandons the provider's page, or the
return and the webhook / IPN are lost, nothing would ever finish them. After
`action_window_seconds` without progress (an unpaid hosted checkout: at its page's expiry,
`checkout_ttl_seconds`) this worker asks the provider before it decides anything:

- the payer approved (a PayPal order APPROVED): it is completed exactly as the return route
  completes it (`RedirectCompleter`, the same `PayPal-Request-Id`, so nothing captures twice);
- the provider settled it (a PayPal order COMPLETED, an SSLCommerz transaction the validation
  API confirms, a Stripe PaymentIntent that succeeded): that answer is applied;
- the payer never approved: it is cancelled at the provider where there is a cancel (Stripe
  cancels the PaymentIntent; a PayPal order needs none, it expires unapproved and moves no
  money; SSLCommerz has none) and moved to `cancelled` with `failure_code` `action_expired`,
  `payment.cancelled` published and an audit record written in the same transaction;
- the provider could not be asked (or its answer is still pending): the payment stays
  `requires_action` and is asked again after the shared backoff. It is never cancelled blind.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from paygate_common.audit import Actor, record_audit
from paygate_common.db import unit_of_work
from paygate_common.events import AuditOutcome, PaymentStatus
from paygate_common.worker import Worker, backoff_delay, describe_error
from payment_service.connectors.base import (
    CompleteContext,
    Connector,
    ConnectorResult,
    Flow,
    ProviderTransport,
    ProviderUnavailable,
    VoidContext,
    operation_key,
)
from payment_service.connectors.provider_http import WebhookRejected
from payment_service.domain import payments as domain
from payment_service.domain.states import PaymentState
from payment_service.settings import Settings
from payment_service.store import payments as store
from payment_service.store.payments import PaymentRow
from payment_service.workers.redirects import RedirectCompleter

log = logging.getLogger("payment_service.abandoned")

S = PaymentState
EXPIRED = "action_expired"
# A PayPal order its payer approved: nothing is charged until we capture or authorise it.
PAYER_APPROVED = "APPROVED"


@runtime_checkable
class ActionLookup(Protocol):
    """A transport that can say more about a payment awaiting its payer than
    `retrieve_payment` (PayPal: an expired order is gone; SSLCommerz: a paid transaction must
    be confirmed by the validation API). None: the provider holds nothing for it any more."""

    async def lookup_action(self, query: CompleteContext) -> Mapping[str, Any] | None: ...


class AbandonedActions:
    """`run_pass()`: settle one batch of payments left waiting for their payer."""

    def __init__(
        self,
        *,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        providers: Mapping[str, tuple[Connector, ProviderTransport]],
        redirects: RedirectCompleter,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.providers = providers
        self.redirects = redirects

    def worker(self) -> Worker:
        return Worker(
            "abandoned-actions",
            self.run_pass,
            interval=self.settings.abandoned_interval_seconds,
            batch_size=self.settings.executor_batch_size,
        )

    async def run_pass(self) -> int:
        """Claim a batch (leased, committed), then ask each payment's provider outside any
        transaction and apply each answer in a unit of work of its own."""
        async with unit_of_work(self.sessionmaker) as session:
            due = await store.claim_abandoned_actions(
                session,
                limit=self.settings.executor_batch_size,
                lease_seconds=self.settings.executor_lease_seconds,
                action_window_seconds=self.settings.action_window_seconds,
                checkout_ttl_seconds=self.settings.checkout_ttl_seconds,
            )
        for payment in due:
            try:
                await self.settle(payment)
            except Exception as exc:  # one payment's surprise must not hold up the batch
                log.exception("payment %s: abandoned check failed", payment.id)
                await self._ask_again(payment, describe_error(exc))
        return len(due)

    async def settle(self, payment: PaymentRow) -> None:
        if payment.provider_reference is None:
            # An unpaid hosted checkout whose page expired: nothing exists at any provider.
            await self._expire(payment, "The checkout page expired before the customer paid")
            return
        connector, transport = self.providers[payment.provider]
        try:
            result = await self._ask(payment, connector, transport)
        except ProviderUnavailable as exc:
            await self._ask_again(payment, f"provider unreachable: {exc}")
            return
        except WebhookRejected as exc:
            # The provider says paid, but not what we asked for (amount, currency, id): a
            # person must look; never cancel a transaction the provider reports as paid.
            log.error("payment %s: provider's record does not match: %s", payment.id, exc)
            await self._ask_again(payment, f"provider record mismatch: {exc}")
            return
        if result is None:
            # The provider holds nothing any more (a PayPal order that expired unapproved).
            await self._expire(payment, "The payer did not approve the payment in time")
        elif result.status is PaymentStatus.REQUIRES_ACTION:
            await self._cancel(payment, connector, transport)
        elif result.status is PaymentStatus.PROCESSING and result.raw_status == PAYER_APPROVED:
            await self._complete(payment)
        elif result.status in (PaymentStatus.PROCESSING, PaymentStatus.PENDING):
            await self._ask_again(payment, f"still processing at {payment.provider}")
        else:
            await self._apply(payment, result)

    async def _ask(
        self, payment: PaymentRow, connector: Connector, transport: ProviderTransport
    ) -> ConnectorResult | None:
        """The provider's word on the payment, in our vocabulary (None: it holds nothing)."""
        if isinstance(transport, ActionLookup):
            raw = await transport.lookup_action(self._query(payment))
        else:
            raw = await transport.retrieve_payment(payment.provider_reference)
        return None if raw is None else connector.parse_authorize_response(raw)

    def _query(self, payment: PaymentRow) -> CompleteContext:
        return CompleteContext(
            payment_id=payment.id,
            provider_reference=payment.provider_reference,
            amount=payment.amount,
            currency=payment.currency,
            capture_method=payment.capture_method,
            idempotency_key=operation_key(payment.id, "complete"),
        )

    async def _complete(self, payment: PaymentRow) -> None:
        """The payer approved but we never heard: finish it as the return route would."""
        try:
            row = await self.redirects.complete(payment.id, provider=payment.provider)
        except ProviderUnavailable as exc:
            await self._ask_again(payment, f"completion unreachable: {exc}")
            return
        if row is not None and row.status == S.REQUIRES_ACTION:
            # Refused after approval (the payer's instrument was declined): a retry would
            # replay the same refusal under the same request id, so the wait is over.
            await self._expire(payment, "The payer's approval could not be completed in time")
            return
        log.info(
            "payment %s: approved at %s but never returned; completed: %s",
            payment.id,
            payment.provider,
            row.status if row is not None else None,
        )

    async def _cancel(
        self, payment: PaymentRow, connector: Connector, transport: ProviderTransport
    ) -> None:
        """Not approved: cancel at the provider where it has a cancel, then here."""
        if Flow.VOID in connector.capabilities:
            request = connector.build_void_request(
                VoidContext(
                    payment_id=payment.id,
                    provider_reference=payment.provider_reference,
                    idempotency_key=operation_key(payment.id, "void"),
                )
            )
            try:
                answer = connector.parse_void_response(await transport.send(request))
            except ProviderUnavailable as exc:
                await self._ask_again(payment, f"cancel unreachable: {exc}")
                return
            if answer.status is PaymentStatus.REQUIRES_ACTION and answer.failure_code:
                # The payer approved between our look-up and the cancel: complete it instead.
                await self._complete(payment)
                return
            if answer.status is not PaymentStatus.CANCELLED:
                # Refused (the payer finished 3-D Secure at this moment, say): the next
                # look-up adopts whatever the provider holds then.
                await self._ask_again(payment, f"cancel refused: {answer.raw_status}")
                return
        await self._expire(payment, "The payer did not complete the payment in time")

    async def _expire(self, payment: PaymentRow, message: str) -> None:
        """Move to `cancelled` / `action_expired` (guarded: only if still waiting, on the same
        provider object), publishing `payment.cancelled` and auditing, in one transaction."""
        async with unit_of_work(self.sessionmaker) as session:
            row = await domain.move(
                session,
                payment.id,
                to=S.CANCELLED,
                from_states=(S.REQUIRES_ACTION,),
                expect={"provider_reference": payment.provider_reference},
                failure_code=EXPIRED,
                failure_message=message,
                next_action=None,
                amount_capturable=0,
                lease_until=None,
            )
            if row is None:
                log.info("payment %s moved on meanwhile; not expired", payment.id)
                return
            await record_audit(
                session,
                producer=domain.PRODUCER,
                action="payment.action_expired",
                entity_type="payment",
                entity_id=payment.id,
                actor=Actor.system(),
                outcome=AuditOutcome.SUCCEEDED,
                details={"provider": payment.provider, "reason": EXPIRED},
            )
        log.info("payment %s: %s; cancelled (%s)", payment.id, message, EXPIRED)

    async def _apply(self, payment: PaymentRow, result: ConnectorResult) -> None:
        """The provider settled it without telling us: adopt its answer (guarded)."""
        if result.status is PaymentStatus.CANCELLED and not result.failure_code:
            result = dataclasses.replace(result, failure_code=EXPIRED)
        async with unit_of_work(self.sessionmaker) as session:
            row = await domain.apply_result(
                session,
                payment.id,
                result,
                from_states=(S.REQUIRES_ACTION,),
                capture_window_seconds=self.settings.capture_window_seconds,
            )
            if row is not None:
                await record_audit(
                    session,
                    producer=domain.PRODUCER,
                    action="payment.action_settled",
                    entity_type="payment",
                    entity_id=payment.id,
                    actor=Actor.system(),
                    details={"provider": payment.provider, "status": str(row.status)},
                )
        log.info(
            "payment %s: %s says %s; adopted",
            payment.id,
            payment.provider,
            result.raw_status,
        )

    async def _ask_again(self, payment: PaymentRow, why: str) -> None:
        delay = backoff_delay(
            int(payment.action_checks) + 1,
            base=self.settings.retry_base_seconds,
            cap=self.settings.retry_max_seconds,
        )
        log.warning("payment %s: %s; asking again in %.1fs", payment.id, why, delay)
        async with unit_of_work(self.sessionmaker) as session:
            await store.defer_action_check(session, payment.id, retry_in=delay)
