"""The payment executor: charges recorded payments so that no order is ever charged twice.

Invariant — at most one provider charge per payment, even if any process is SIGKILLed at any
instant (the provider may ignore idempotency keys: localstripe does):

1. The `order.create` handler only records intent: a `payments` row in state `created`,
   unique on `order_id` (a redelivered event is a no-op even past the inbox).
2. An executor leases due `created` payments (`FOR UPDATE SKIP LOCKED`), then, in ONE committed
   transaction, moves the payment `created → processing` (guarded, so of two executors only one
   wins, and a cancelled payment is never claimed) and inserts an `in_flight` attempt with its
   idempotency key and `started_at`. Only AFTER that commit does it call the provider.
3. The provider's answer is stored on the attempt and the payment, with the `payment.event`
   outbox row, in one transaction. A payment leaves `processing` only through that, a webhook,
   or reconciliation.
4. So a provider call can only have happened for an attempt whose row says `in_flight` or
   `unknown`. Before a payment is charged again, the provider is asked whether a
   PaymentIntent for it exists (metadata `payment_id`): an `unknown` outcome sets
   `needs_reconcile`; an attempt still `in_flight` after `reconcile_after_seconds` (longer than
   any provider request may take) is reconciled by the periodic pass. If the provider holds an
   intent, its status is adopted; only if it holds none is a new attempt made.

The assumption it rests on: a provider request finishes (or is abandoned by the provider)
within `reconcile_after_seconds`, and the provider's list API shows an intent once created.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from paygate_common.db import unit_of_work
from paygate_common.events import PaymentStatus
from paygate_common.logging import mask, request_id_var
from payment_service.connectors.base import (
    Connector,
    ConnectorResult,
    PaymentContext,
    ProviderTransport,
    ProviderUnavailable,
    idempotency_key,
)
from payment_service.domain import payments as domain
from payment_service.domain.payment_context import (
    PaymentMethodUnavailable,
    UserDirectory,
    UserServiceUnavailable,
)
from payment_service.settings import Settings
from payment_service.store import payments as store
from payment_service.store.payments import PaymentRow

log = logging.getLogger("payment_service.executor")

ATTEMPT_STATUS: dict[PaymentStatus, str] = {
    PaymentStatus.SUCCEEDED: "succeeded",
    PaymentStatus.FAILED: "failed",
    PaymentStatus.REQUIRES_ACTION: "requires_action",
    PaymentStatus.PENDING: "pending",
    PaymentStatus.CANCELLED: "cancelled",
}
MAX_ERROR_CHARS = 500


def _describe(exc: BaseException) -> str:
    return mask(f"{type(exc).__name__}: {exc}")[:MAX_ERROR_CHARS]


class PaymentExecutor:
    """Background loops: `run()` charges due payments, `run_reconciler()` settles lost attempts."""

    def __init__(
        self,
        *,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        connector: Connector,
        transport: ProviderTransport,
        users: UserDirectory,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.connector = connector
        self.transport = transport
        self.users = users
        self._stopping = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._random = random.Random()

    # -- loops -------------------------------------------------------------------------------

    def wake(self) -> None:
        self._wakeup.set()

    async def stop(self) -> None:
        self._stopping.set()
        self._wakeup.set()

    async def run(self) -> None:
        """One worker: claim a batch, charge it concurrently, repeat; sleep when idle."""
        while not self._stopping.is_set():
            try:
                claimed = await self.run_once()
            except Exception:
                log.exception("executor pass failed")
                claimed = 0
            if claimed < self.settings.executor_batch_size:
                await self._idle(self.settings.executor_poll_seconds)

    async def run_reconciler(self) -> None:
        """On start and every `reconcile_interval_seconds`: settle stale in-flight attempts."""
        while not self._stopping.is_set():
            try:
                while await self.reconcile_stale() > 0:
                    pass
            except Exception:
                log.exception("reconciliation pass failed")
            await self._idle(self.settings.reconcile_interval_seconds)

    async def _idle(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), seconds)
        self._wakeup.clear()

    async def run_once(self) -> int:
        """Claim up to a batch of due payments and work them; returns how many were claimed."""
        async with unit_of_work(self.sessionmaker) as session:
            claimed = await store.claim_due_payments(
                session,
                limit=self.settings.executor_batch_size,
                lease_seconds=self.settings.executor_lease_seconds,
            )
        if claimed:
            results = await asyncio.gather(
                *(self.charge(payment) for payment in claimed), return_exceptions=True
            )
            for payment, outcome in zip(claimed, results, strict=True):
                if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
                    raise outcome
                if isinstance(outcome, Exception):
                    log.error("charging payment %s failed: %s", payment.id, _describe(outcome))
                    await self._release(payment.id, self._backoff(payment.attempt_count + 1))
        return len(claimed)

    # -- one payment -------------------------------------------------------------------------

    async def charge(self, payment: PaymentRow) -> None:
        """Work one leased `created` payment under the order request's correlation id."""
        token = request_id_var.set(payment.correlation_id or str(payment.id))
        try:
            await self._charge(payment)
        finally:
            request_id_var.reset(token)

    async def _charge(self, payment: PaymentRow) -> None:
        """Reconcile, cancel, or make the next attempt."""
        if payment.needs_reconcile and await self._reconcile_unknown(payment):
            return
        if payment.cancel_requested:
            await self._cancel(payment.id)
            return
        if payment.attempt_count >= self.settings.max_provider_attempts:
            await self._give_up(payment.id)
            return

        try:
            method = await self.users.payment_context(payment.user_id, payment.payment_method_id)
        except UserServiceUnavailable as exc:
            log.warning("payment %s waits for user-service: %s", payment.id, exc)
            await self._release(payment.id, self._backoff(1))
            return
        except PaymentMethodUnavailable as exc:
            async with unit_of_work(self.sessionmaker) as session:
                await domain.apply_result(
                    session,
                    payment.id,
                    ConnectorResult(
                        PaymentStatus.FAILED, failure_code=exc.code, failure_message=exc.message
                    ),
                    from_states=(domain.CREATED,),
                )
            return

        attempt_no = payment.attempt_count + 1
        context = PaymentContext(
            payment_id=payment.id,
            order_id=payment.order_id,
            user_id=payment.user_id,
            amount=payment.amount,
            currency=payment.currency,
            attempt_no=attempt_no,
            idempotency_key=idempotency_key(payment.id, attempt_no),
            payment_method_token=method.token,
            provider_customer_id=method.provider_customer_id,
            description=payment.description,
        )
        request = self.connector.build_authorize_request(context)

        # Step 2 of the invariant: the attempt is durable before the provider hears of it.
        async with unit_of_work(self.sessionmaker) as session:
            claimed = await store.transition(
                session,
                payment.id,
                to=domain.PROCESSING,
                from_states=(domain.CREATED,),
                # A stale view (the lease ran out and someone else moved on) claims nothing,
                # and neither does a payment whose order was cancelled meanwhile.
                expect={
                    "attempt_count": payment.attempt_count,
                    "needs_reconcile": False,
                    "cancel_requested": False,
                },
                attempt_count=attempt_no,
                lease_until=None,
            )
            if claimed is not None:
                await store.insert_attempt(
                    session,
                    id=uuid.uuid4(),
                    payment_id=payment.id,
                    attempt_no=attempt_no,
                    idempotency_key=context.idempotency_key,
                    status="in_flight",
                )
        if claimed is None:
            async with unit_of_work(self.sessionmaker) as session:
                current = await store.get_payment(session, payment.id)
            if (
                current is not None
                and current.status == domain.CREATED
                and current.cancel_requested
            ):
                await self._cancel(payment.id)
            return

        try:
            raw = await self.transport.send(request)
        except Exception as exc:
            # The provider may or may not have charged: reconcile before any new attempt.
            await self._record_unknown(payment.id, attempt_no, exc)
            return
        result = self.connector.parse_authorize_response(raw)
        await self.record_outcome(payment.id, attempt_no, result)

    async def record_outcome(
        self, payment_id: uuid.UUID, attempt_no: int, result: ConnectorResult
    ) -> None:
        """Step 3: the attempt, the payment and its event, in one transaction."""
        async with unit_of_work(self.sessionmaker) as session:
            # `abandoned` too: a slow call reconciliation gave up on did reach the provider.
            await store.finish_attempt(
                session,
                payment_id,
                attempt_no,
                from_states=("in_flight", "abandoned", "unknown"),
                status=ATTEMPT_STATUS[result.status],
                provider_reference=result.provider_reference,
                failure_code=result.failure_code,
                failure_message=result.failure_message,
            )
            row = await domain.apply_result(
                session, payment_id, result, from_states=(domain.CREATED, domain.PROCESSING)
            )
            if row is None:
                current = await store.get_payment(session, payment_id)
                if current is not None and current.status != result.status.value:
                    log.warning(
                        "payment %s is %s; provider result %s not applied",
                        payment_id,
                        current.status,
                        result.status.value,
                    )

    async def _record_unknown(
        self, payment_id: uuid.UUID, attempt_no: int, exc: BaseException
    ) -> None:
        log.warning(
            "payment %s attempt %d: outcome unknown (%s)", payment_id, attempt_no, _describe(exc)
        )
        async with unit_of_work(self.sessionmaker) as session:
            await store.finish_attempt(
                session, payment_id, attempt_no, status="unknown", error=_describe(exc)
            )
            await store.transition(
                session,
                payment_id,
                to=domain.CREATED,
                from_states=(domain.PROCESSING,),
                needs_reconcile=True,
                lease_until=None,
            )
            await store.release_payment(session, payment_id, retry_in=self._backoff(attempt_no))

    # -- reconciliation ----------------------------------------------------------------------

    async def _reconcile_unknown(self, payment: PaymentRow) -> bool:
        """Ask the provider about a payment whose last attempt's outcome is unknown.

        True if the payment was settled (adopted or released for later); False to go on and
        make a new attempt.
        """
        try:
            raw = await self.transport.find_payment(payment.id, customer=None)
        except ProviderUnavailable as exc:
            log.warning("payment %s: reconciliation lookup failed: %s", payment.id, exc)
            await self._release(payment.id, self._backoff(payment.attempt_count))
            return True
        async with unit_of_work(self.sessionmaker) as session:
            if raw is None:
                await store.finish_unknown_attempts(session, payment.id, status="abandoned")
                await store.update_payment(
                    session, payment.id, in_states=(domain.CREATED,), needs_reconcile=False
                )
                return False
            result = self.connector.parse_authorize_response(raw)
            await store.finish_unknown_attempts(
                session,
                payment.id,
                status=ATTEMPT_STATUS[result.status],
                provider_reference=result.provider_reference,
            )
            row = await domain.apply_result(
                session, payment.id, result, from_states=(domain.CREATED,)
            )
            log.info(
                "payment %s: adopted provider status %s (%s)",
                payment.id,
                result.raw_status,
                "applied" if row else "already settled",
            )
        return True

    async def reconcile_stale(self) -> int:
        """Settle attempts stuck `in_flight` (a crash between commit and outcome); returns count."""
        async with unit_of_work(self.sessionmaker) as session:
            stale = await store.lock_stale_in_flight(
                session,
                older_than_seconds=self.settings.reconcile_after_seconds,
                limit=self.settings.executor_batch_size,
            )
            settled = 0
            for attempt in stale:
                # The rows stay locked during the lookup so no other reconciler races us.
                try:
                    raw = await self.transport.find_payment(attempt.payment_id, customer=None)
                except ProviderUnavailable as exc:
                    log.warning(
                        "reconciling payment %s: lookup failed: %s", attempt.payment_id, exc
                    )
                    continue
                settled += 1
                if raw is None:
                    await store.finish_attempt(
                        session,
                        attempt.payment_id,
                        attempt.attempt_no,
                        status="abandoned",
                        error="no provider object found by reconciliation",
                    )
                    await store.transition(
                        session,
                        attempt.payment_id,
                        to=domain.CREATED,
                        from_states=(domain.PROCESSING,),
                        lease_until=None,
                    )
                    log.warning(
                        "payment %s attempt %d never reached the provider; retrying",
                        attempt.payment_id,
                        attempt.attempt_no,
                    )
                    continue
                result = self.connector.parse_authorize_response(raw)
                await store.finish_attempt(
                    session,
                    attempt.payment_id,
                    attempt.attempt_no,
                    status=ATTEMPT_STATUS[result.status],
                    provider_reference=result.provider_reference,
                    failure_code=result.failure_code,
                    failure_message=result.failure_message,
                )
                await domain.apply_result(
                    session,
                    attempt.payment_id,
                    result,
                    from_states=(domain.CREATED, domain.PROCESSING),
                )
                log.info(
                    "payment %s attempt %d reconciled: provider says %s",
                    attempt.payment_id,
                    attempt.attempt_no,
                    result.raw_status,
                )
        if settled:
            self.wake()
        return settled

    # -- helpers -----------------------------------------------------------------------------

    async def _cancel(self, payment_id: uuid.UUID) -> None:
        async with unit_of_work(self.sessionmaker) as session:
            row = await domain.apply_result(
                session,
                payment_id,
                ConnectorResult(
                    PaymentStatus.CANCELLED,
                    failure_code="order_cancelled",
                    failure_message="The order was cancelled before it was charged",
                ),
                from_states=(domain.CREATED,),
            )
        if row is not None:
            log.info("payment %s cancelled before any charge", payment_id)

    async def _give_up(self, payment_id: uuid.UUID) -> None:
        async with unit_of_work(self.sessionmaker) as session:
            await domain.apply_result(
                session,
                payment_id,
                ConnectorResult(
                    PaymentStatus.FAILED,
                    failure_code="provider_unavailable",
                    failure_message="The payment provider could not be reached",
                ),
                from_states=(domain.CREATED,),
            )

    async def _release(self, payment_id: uuid.UUID, retry_in: float) -> None:
        async with unit_of_work(self.sessionmaker) as session:
            await store.release_payment(session, payment_id, retry_in=retry_in)

    def _backoff(self, attempt: int) -> float:
        """Capped exponential backoff with jitter, so a provider outage is not hammered."""
        cap = min(
            self.settings.retry_max_seconds,
            self.settings.retry_base_seconds * 2 ** max(0, attempt - 1),
        )
        return self._random.uniform(cap / 2, cap)
