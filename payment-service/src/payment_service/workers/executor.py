"""The payment executor: authorises recorded payments so that none is ever charged twice.

Invariant — at most one provider charge per payment, even if any process is SIGKILLed at any
instant (the provider may ignore idempotency keys: localstripe does):

1. The `order.create` handler (or POST /payments) only records intent: a `payments` row in
   state `created`, unique on `order_id` (a redelivered event is a no-op even past the inbox).
2. An executor leases a batch of due `created` payments (`FOR UPDATE SKIP LOCKED`) and, in the
   SAME committed transaction, moves each one it can charge `created → processing` (guarded, so
   of two executors only one wins, and a cancelled payment is never claimed) and inserts its
   `in_flight` attempt with its idempotency key and `started_at`. (A payment to reconcile, to
   cancel, or whose method must be looked up first starts in a second transaction, guarded by
   the attempt count it was leased with.) Only AFTER that commit are the providers called.
3. The providers' answers are stored on the attempts and the payments, with the
   `payment.event` outbox rows, in one transaction per batch. A payment leaves `processing` only through that, a webhook,
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
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from paygate_common.db import retrying_unit_of_work, unit_of_work
from paygate_common.events import PaymentStatus
from paygate_common.logging import request_id_var
from paygate_common.worker import Worker, backoff_delay, describe_error
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
    PaymentMethodContext,
    PaymentMethodUnavailable,
    UserDirectory,
    UserServiceUnavailable,
)
from payment_service.domain.states import PaymentState
from payment_service.settings import Settings
from payment_service.store import payments as store
from payment_service.store.payments import PaymentRow

log = logging.getLogger("payment_service.executor")

ATTEMPT_STATUS: dict[PaymentStatus, str] = {
    PaymentStatus.SUCCEEDED: "succeeded",
    PaymentStatus.FAILED: "failed",
    PaymentStatus.REQUIRES_ACTION: "requires_action",
    PaymentStatus.REQUIRES_CAPTURE: "requires_capture",
    PaymentStatus.PENDING: "pending",
    PaymentStatus.PROCESSING: "pending",
    PaymentStatus.CANCELLED: "cancelled",
    # An authorisation never ends refunded; mapped so the match stays total.
    PaymentStatus.PARTIALLY_REFUNDED: "succeeded",
    PaymentStatus.REFUNDED: "succeeded",
}
S = PaymentState
_describe = describe_error
T = TypeVar("T")
# A started attempt to send: the payment, its attempt number, the method to charge.
_Charge = tuple[PaymentRow, int, PaymentMethodContext]


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
        providers: Mapping[str, tuple[Connector, ProviderTransport]] | None = None,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        # The default provider's pair, and every other provider's (a payment names its own).
        self.connector = connector
        self.transport = transport
        self.providers = {**(providers or {}), connector.name: (connector, transport)}
        self.users = users
        self._workers: list[Worker] = []
        self._random = random.Random()
        # Providers whose charge needs no payment method (the customer picks on their page).
        self._methodless = sorted(
            name for name, (c, _) in self.providers.items() if not c.needs_payment_method
        )

    # -- loops (on the shared worker loop) ---------------------------------------------------

    def workers(
        self, *, engine: AsyncEngine | None = None, channel: str | None = None
    ) -> list[Worker]:
        """ONE charging loop (it LISTENs; the batch's provider calls run concurrently inside a
        pass) and the reconciler. Several loops would all wake on each NOTIFY and race for the
        same rows; replicas share the work through SKIP LOCKED instead."""
        charging = Worker(
            "payment-executor",
            self.run_once,
            interval=self.settings.executor_poll_seconds,
            batch_size=self.settings.executor_batch_size,
            engine=engine,
            channel=channel,
        )
        reconciler = Worker(
            "payment-reconciler",
            self.reconcile_stale,
            interval=self.settings.reconcile_interval_seconds,
            batch_size=self.settings.executor_batch_size,
        )
        self._workers = [charging, reconciler]
        return self._workers

    def wake(self) -> None:
        for worker in self._workers:
            worker.wake()

    async def run_once(self) -> int:
        """Lease and charge up to a batch of due payments; returns how many were leased.

        One transaction leases the batch and starts (`processing` + an `in_flight` attempt,
        step 2 of the invariant) every payment that can be charged without a lookup; the rest
        are reconciled, cancelled, given up on, or have their method looked up, and start in a
        second transaction. Only then are the providers called, all at once, and their answers
        recorded together in one more transaction (step 3).
        """
        async with unit_of_work(self.sessionmaker) as session:
            started, leased = await domain.lease_and_start_due(
                session,
                limit=self.settings.executor_batch_size,
                lease_seconds=self.settings.executor_lease_seconds,
                max_attempts=self.settings.max_provider_attempts,
                providers=sorted(self.providers),
                methodless=self._methodless,
            )
            await store.insert_attempts(
                session, [self._new_attempt(p.id, p.attempt_count) for p in started]
            )
        charges: list[_Charge] = []
        for payment in started:
            # Started only with a token or for a provider that needs none: no lookup here.
            connector, _ = self.provider(payment.provider)
            method = await self._method_for(payment, connector)
            charges.append((payment, payment.attempt_count, method))
        if leased:
            charges += await self._start_leased(leased)
        if charges:
            await self._charge_batch(charges)
        return len(started) + len(leased)

    def provider(self, name: str) -> tuple[Connector, ProviderTransport]:
        """The connector and transport of a payment's provider."""
        try:
            return self.providers[name]
        except KeyError:
            raise LookupError(f"no connector for provider {name!r}") from None

    # -- a batch -----------------------------------------------------------------------------

    async def _start_leased(self, leased: list[PaymentRow]) -> list[_Charge]:
        """Settle what must be settled first (concurrently), then start the rest's attempts in
        one transaction; returns the charges to make."""
        prepared = await asyncio.gather(
            *(self._with_correlation(p, self._prepare(p)) for p in leased),
            return_exceptions=True,
        )
        ready: list[tuple[PaymentRow, PaymentMethodContext]] = []
        for payment, outcome in zip(leased, prepared, strict=True):
            if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
                raise outcome
            if isinstance(outcome, Exception):
                log.error("charging payment %s failed: %s", payment.id, _describe(outcome))
                await self._release(payment.id, self._backoff(payment.attempt_count + 1))
            elif outcome is not None:
                ready.append((payment, outcome))
        if not ready:
            return []
        # Step 2 of the invariant: the attempts are durable before any provider hears of them.
        async with unit_of_work(self.sessionmaker) as session:
            moved = await domain.start_leased(session, [payment for payment, _ in ready])
            await store.insert_attempts(
                session,
                [
                    self._new_attempt(payment.id, payment.attempt_count + 1)
                    for payment, _ in ready
                    if payment.id in moved
                ],
            )
        for payment, _ in ready:
            if payment.id not in moved:
                # A stale view (the lease ran out and someone else moved on) starts nothing;
                # a payment whose order was cancelled meanwhile is cancelled now.
                async with unit_of_work(self.sessionmaker) as session:
                    current = await store.get_payment(session, payment.id)
                if current is not None and current.status == S.CREATED and current.cancel_requested:
                    await self._cancel(payment.id)
        return [
            (payment, payment.attempt_count + 1, method)
            for payment, method in ready
            if payment.id in moved
        ]

    async def _prepare(self, payment: PaymentRow) -> PaymentMethodContext | None:
        """Reconcile, cancel or give up on a leased payment; else the method to charge it with
        (None: nothing to charge now)."""
        if payment.needs_reconcile and await self._reconcile_unknown(payment):
            return None
        if payment.cancel_requested:
            await self._cancel(payment.id)
            return None
        if payment.attempt_count >= self.settings.max_provider_attempts:
            await self._give_up(payment.id)
            return None
        connector, _ = self.provider(payment.provider)
        try:
            return await self._method_for(payment, connector)
        except UserServiceUnavailable as exc:
            log.warning("payment %s waits for user-service: %s", payment.id, exc)
            await self._release(payment.id, self._backoff(1))
        except PaymentMethodUnavailable as exc:
            async with unit_of_work(self.sessionmaker) as session:
                await domain.apply_result(
                    session,
                    payment.id,
                    ConnectorResult(
                        PaymentStatus.FAILED, failure_code=exc.code, failure_message=exc.message
                    ),
                    from_states=(S.CREATED,),
                )
        return None

    async def _charge_batch(self, charges: list[_Charge]) -> None:
        """Call the providers for started attempts concurrently; record the answers together."""
        calls = await asyncio.gather(
            *(
                self._with_correlation(payment, self._authorize(payment, attempt_no, method))
                for payment, attempt_no, method in charges
            ),
            return_exceptions=True,
        )
        answered: list[tuple[uuid.UUID, int, ConnectorResult]] = []
        lost: list[tuple[PaymentRow, int, Exception]] = []
        for (payment, attempt_no, _), outcome in zip(charges, calls, strict=True):
            if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
                raise outcome  # the process is going down: nothing more is recorded
            if isinstance(outcome, Exception):
                lost.append((payment, attempt_no, outcome))
            else:
                answered.append((payment.id, attempt_no, outcome))
        if answered:
            await self.record_outcomes(answered)
        for payment, attempt_no, exc in lost:
            # The provider may or may not have charged: reconcile before any new attempt.
            await self._record_unknown(payment.id, attempt_no, exc)

    async def _authorize(
        self, payment: PaymentRow, attempt_no: int, method: PaymentMethodContext
    ) -> ConnectorResult:
        """One provider call for a started attempt (whatever it raises counts as unknown)."""
        connector, transport = self.provider(payment.provider)
        public = self.settings.public_base()
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
            capture_method=payment.capture_method,
            return_url=payment.return_url,
            callback_url=f"{public}/provider-return/{payment.provider}/{payment.id}",
            notify_url=f"{public}/webhooks/{payment.provider}",
        )
        raw = await transport.send(connector.build_authorize_request(context))
        return connector.parse_authorize_response(raw)

    async def record_outcomes(
        self, outcomes: Sequence[tuple[uuid.UUID, int, ConnectorResult]]
    ) -> None:
        """Step 3: the attempts, the payments and their events, in one transaction.

        If the batch cannot be recorded (one answer the database refuses), each outcome is
        recorded on its own, so one bad answer holds up only its own payment; one that still
        fails stays `in_flight` for the reconciler (never charged again blind).
        """
        try:
            await retrying_unit_of_work(self.sessionmaker, self._recorder(outcomes))
        except Exception as exc:
            if len(outcomes) == 1:
                raise
            log.error(
                "recording %d outcomes failed (%s); recording them one by one",
                len(outcomes),
                _describe(exc),
            )
            for outcome in outcomes:
                try:
                    await retrying_unit_of_work(self.sessionmaker, self._recorder([outcome]))
                except Exception as one:
                    log.error(
                        "payment %s attempt %d: outcome not recorded, left to reconciliation: %s",
                        outcome[0],
                        outcome[1],
                        _describe(one),
                    )

    def _recorder(
        self, outcomes: Sequence[tuple[uuid.UUID, int, ConnectorResult]]
    ) -> Callable[[AsyncSession], Awaitable[None]]:
        async def record(session: AsyncSession) -> None:
            # `abandoned` too: a slow call reconciliation gave up on did reach the provider.
            await store.finish_attempts(
                session,
                [
                    store.FinishedAttempt(
                        payment_id,
                        attempt_no,
                        ATTEMPT_STATUS[result.status],
                        provider_reference=result.provider_reference,
                        failure_code=result.failure_code,
                        failure_message=result.failure_message,
                    )
                    for payment_id, attempt_no, result in outcomes
                ],
                from_states=("in_flight", "abandoned", "unknown"),
            )
            rows = await domain.apply_results(
                session,
                [(payment_id, result) for payment_id, _, result in outcomes],
                from_states=(S.CREATED, S.PROCESSING),
                capture_window_seconds=self.settings.capture_window_seconds,
            )
            missed = {
                payment_id: result
                for (payment_id, _, result), row in zip(outcomes, rows, strict=True)
                if row is None
            }
            if missed:
                for payment_id, status in (await store.statuses_of(session, list(missed))).items():
                    if status != missed[payment_id].status.value:
                        log.warning(
                            "payment %s is %s; provider result %s not applied",
                            payment_id,
                            status,
                            missed[payment_id].status.value,
                        )

        return record

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
            await domain.move(
                session,
                payment_id,
                to=S.CREATED,
                from_states=(S.PROCESSING,),
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
        connector, transport = self.provider(payment.provider)
        try:
            raw = await transport.find_payment(payment.id, customer=None)
        except ProviderUnavailable as exc:
            log.warning("payment %s: reconciliation lookup failed: %s", payment.id, exc)
            await self._release(payment.id, self._backoff(payment.attempt_count))
            return True
        async with unit_of_work(self.sessionmaker) as session:
            if raw is None:
                await store.finish_unknown_attempts(session, payment.id, status="abandoned")
                await store.update_payment(
                    session, payment.id, in_states=(S.CREATED.value,), needs_reconcile=False
                )
                return False
            result = connector.parse_authorize_response(raw)
            await store.finish_unknown_attempts(
                session,
                payment.id,
                status=ATTEMPT_STATUS[result.status],
                provider_reference=result.provider_reference,
            )
            row = await domain.apply_result(
                session,
                payment.id,
                result,
                from_states=(S.CREATED,),
                capture_window_seconds=self.settings.capture_window_seconds,
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
                owner = await store.get_payment(session, attempt.payment_id)
                connector, transport = self.provider(owner.provider if owner else "")
                try:
                    raw = await transport.find_payment(attempt.payment_id, customer=None)
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
                    await domain.move(
                        session,
                        attempt.payment_id,
                        to=S.CREATED,
                        from_states=(S.PROCESSING,),
                        lease_until=None,
                    )
                    log.warning(
                        "payment %s attempt %d never reached the provider; retrying",
                        attempt.payment_id,
                        attempt.attempt_no,
                    )
                    continue
                result = connector.parse_authorize_response(raw)
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
                    from_states=(S.CREATED, S.PROCESSING),
                    capture_window_seconds=self.settings.capture_window_seconds,
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
                from_states=(S.CREATED,),
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
                from_states=(S.CREATED,),
            )

    async def _release(self, payment_id: uuid.UUID, retry_in: float) -> None:
        async with unit_of_work(self.sessionmaker) as session:
            await store.release_payment(session, payment_id, retry_in=retry_in)

    def _new_attempt(self, payment_id: uuid.UUID, attempt_no: int) -> store.NewAttempt:
        return store.NewAttempt(payment_id, attempt_no, idempotency_key(payment_id, attempt_no))

    async def _with_correlation(self, payment: PaymentRow, work: Awaitable[T]) -> T:
        """Run `work` (its own task under gather) under the order request's correlation id."""
        token = request_id_var.set(payment.correlation_id or str(payment.id))
        try:
            return await work
        finally:
            request_id_var.reset(token)

    def _backoff(self, attempt: int) -> float:
        return backoff_delay(
            attempt,
            base=self.settings.retry_base_seconds,
            cap=self.settings.retry_max_seconds,
            rng=self._random,
        )

    async def _method_for(self, payment: PaymentRow, connector: Connector) -> PaymentMethodContext:
        """The token to charge: given directly (POST /payments), or the user's saved method;
        none for a redirect provider (the customer chooses on the provider's page)."""
        if not connector.needs_payment_method:
            return PaymentMethodContext(
                user_id=payment.user_id,
                provider_customer_id=None,
                payment_method_id=None,
                provider=payment.provider,
                token="",
            )
        if payment.payment_method_token:
            # Given directly, or carried by order.create with its customer: no call.
            return PaymentMethodContext(
                user_id=payment.user_id,
                provider_customer_id=payment.provider_customer_id,
                payment_method_id=payment.payment_method_id,
                provider=payment.provider,
                token=payment.payment_method_token,
            )
        return await self.users.payment_context(payment.user_id, payment.payment_method_id)
