"""The operation sender: captures, voids and refunds reach the provider once, after their commit.

Invariant (the same as the executor's for charges): an operation row — with the idempotency key
`paygate-<payment>-capture|void` or `paygate-refund-<refund>` — is committed by the request that
decided it. Only then is it sent: `queued → in_flight` is a guarded UPDATE committed BEFORE the
provider call (of two senders, only one wins), and the answer is applied in a new transaction.
An operation whose answer was lost (`unknown`), or that is still `in_flight` after
`reconcile_after_seconds` (its sender was killed), is never re-sent blind: the provider is asked
first (the refund by our id in its metadata, the PaymentIntent by its id) and what it holds is
adopted; only if it holds nothing is the operation queued again. So a refund is made at most
once at the provider even when the provider ignores idempotency keys (localstripe does).
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from paygate_common.db import retrying_unit_of_work, unit_of_work
from paygate_common.events import PaymentStatus, RefundStatus
from paygate_common.worker import Worker, backoff_delay, describe_error
from payment_service.connectors.base import (
    CaptureContext,
    Connector,
    ConnectorResult,
    ProviderTransport,
    ProviderUnavailable,
    RefundContext,
    RefundResult,
    VoidContext,
)
from payment_service.domain import payments as domain
from payment_service.domain import refunds
from payment_service.domain.states import PaymentState
from payment_service.settings import Settings
from payment_service.store import payments as store
from payment_service.store.payments import OperationRow, PaymentRow

log = logging.getLogger("payment_service.operations")

S = PaymentState


class OperationSender:
    """Sends recorded operations; `send(id)` for the request's fast path, `run_pass` for the loop."""

    def __init__(
        self,
        *,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        connector: Connector,
        transport: ProviderTransport,
        providers: Mapping[str, tuple[Connector, ProviderTransport]] | None = None,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.connector = connector
        self.transport = transport
        # Every provider's pair: an operation goes to its payment's provider.
        self.providers = {**(providers or {}), connector.name: (connector, transport)}
        self._random = random.Random()
        self._worker: Worker | None = None

    def worker(self, *, engine: AsyncEngine | None = None, channel: str | None = None) -> Worker:
        self._worker = Worker(
            "payment-operations",
            self.run_pass,
            interval=self.settings.executor_poll_seconds * 5,
            batch_size=self.settings.executor_batch_size,
            engine=engine,
            channel=channel,
        )
        return self._worker

    def wake(self) -> None:
        if self._worker is not None:
            self._worker.wake()

    # -- the loop ----------------------------------------------------------------------------

    async def run_pass(self) -> int:
        """Mark abandoned in-flight operations unknown, then lease due ones and work them."""
        async with unit_of_work(self.sessionmaker) as session:
            stale = await store.stale_in_flight_operations(
                session,
                older_than_seconds=self.settings.reconcile_after_seconds,
                limit=self.settings.executor_batch_size,
            )
            for operation in stale:
                log.warning(
                    "%s %s of payment %s was in flight when its sender stopped; reconciling",
                    operation.kind,
                    operation.id,
                    operation.payment_id,
                )
            claimed = await store.claim_due_operations(
                session,
                limit=self.settings.executor_batch_size,
                lease_seconds=self.settings.executor_lease_seconds,
            )
        outcomes = await asyncio.gather(
            *(self._work(operation) for operation in claimed), return_exceptions=True
        )
        for operation, outcome in zip(claimed, outcomes, strict=True):
            if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
                raise outcome
            if isinstance(outcome, Exception):
                log.error("%s %s failed: %s", operation.kind, operation.id, describe_error(outcome))
        return len(claimed) + len(stale)

    async def _work(self, operation: OperationRow) -> None:
        if operation.status == "unknown":
            await self.reconcile(operation.id)
        else:
            await self.send(operation.id)

    def provider(self, name: str) -> tuple[Connector, ProviderTransport]:
        try:
            return self.providers[name]
        except KeyError:
            raise LookupError(f"no connector for provider {name!r}") from None

    # -- one operation -----------------------------------------------------------------------

    async def send(self, operation_id: uuid.UUID) -> None:
        """Send a queued operation once (no-op if another sender has it, or it is settled)."""
        async with unit_of_work(self.sessionmaker) as session:
            operation = await store.start_operation(session, operation_id)
            payment = await store.get_payment(session, operation.payment_id) if operation else None
        if operation is None or payment is None:
            return
        _, transport = self.provider(payment.provider)
        request = self._build(operation, payment)
        try:
            raw = await transport.send(request)
        except Exception as exc:
            # The provider may or may not have acted: ask it before anything is sent again.
            await self._record_unknown(operation, exc)
            return
        await self._apply(operation, payment, raw)

    async def reconcile(self, operation_id: uuid.UUID) -> None:
        """Adopt what the provider holds for an operation whose outcome is unknown."""
        async with unit_of_work(self.sessionmaker) as session:
            operation = await store.get_operation(session, operation_id)
            payment = await store.get_payment(session, operation.payment_id) if operation else None
        if operation is None or payment is None or operation.status != "unknown":
            return
        reference = payment.provider_reference or ""
        _, transport = self.provider(payment.provider)
        try:
            if operation.kind == "refund":
                found = await transport.find_refund(
                    operation.refund_id,
                    provider_reference=reference,
                    # a provider asked by its own refund id (SSLCommerz) gets it
                    refund_reference=operation.provider_reference,
                )
            else:
                found = await transport.retrieve_payment(reference)
        except ProviderUnavailable as exc:
            await self._retry_later(operation, exc)
            return
        if found is None or not self._already_done(operation, payment, found):
            # The provider holds no trace of it: it never arrived. Send it (the same key) again.
            async with unit_of_work(self.sessionmaker) as session:
                await store.finish_operation(
                    session, operation.id, from_states=("unknown",), status="queued"
                )
            log.info(
                "%s %s never reached the provider; sending again", operation.kind, operation.id
            )
            await self.send(operation.id)
            return
        log.info("%s %s: the provider had done it; adopting", operation.kind, operation.id)
        await self._apply(operation, payment, found, from_states=("unknown",))

    def _already_done(
        self, operation: OperationRow, payment: PaymentRow, found: Mapping[str, Any]
    ) -> bool:
        """For a capture or a void: did the PaymentIntent leave the state we asked it to leave?"""
        if operation.kind == "refund":
            return True
        connector, _ = self.provider(payment.provider)
        status = connector.parse_authorize_response(found).status
        if operation.kind == "capture":
            return status is not PaymentStatus.REQUIRES_CAPTURE
        return status in (PaymentStatus.CANCELLED, PaymentStatus.SUCCEEDED, PaymentStatus.FAILED)

    def _build(self, operation: OperationRow, payment: PaymentRow) -> Any:
        reference = payment.provider_reference or ""
        connector, _ = self.provider(payment.provider)
        match operation.kind:
            case "capture":
                return connector.build_capture_request(
                    CaptureContext(
                        payment_id=payment.id,
                        provider_reference=reference,
                        amount=int(operation.amount),
                        currency=payment.currency,
                        idempotency_key=operation.idempotency_key,
                    )
                )
            case "void":
                return connector.build_void_request(
                    VoidContext(
                        payment_id=payment.id,
                        provider_reference=reference,
                        idempotency_key=operation.idempotency_key,
                    )
                )
            case "refund":
                return connector.build_refund_request(
                    RefundContext(
                        refund_id=operation.refund_id,
                        payment_id=payment.id,
                        provider_reference=reference,
                        amount=int(operation.amount),
                        currency=payment.currency,
                        idempotency_key=operation.idempotency_key,
                    )
                )
            case _:
                raise ValueError(f"unknown operation kind {operation.kind}")

    async def _apply(
        self,
        operation: OperationRow,
        payment: PaymentRow,
        raw: Mapping[str, Any],
        *,
        from_states: tuple[str, ...] = ("in_flight",),
    ) -> None:
        """The answer, the operation, the payment (or refund) and their events: one transaction.

        A webhook settling the same refund or capture at the same moment can deadlock with it
        (they lock the operation, refund and payment rows in another order); PostgreSQL aborts
        one and it runs again, finding the other's result through the guarded transitions.
        """
        connector, _ = self.provider(payment.provider)

        async def apply(session: AsyncSession) -> None:
            if operation.kind == "refund":
                refund = connector.parse_refund_response(raw)
                await self._apply_refund(session, operation, refund, from_states)
                return
            if operation.kind == "capture":
                result = connector.parse_capture_response(raw)
            else:
                result = connector.parse_void_response(raw)
            done = await store.finish_operation(
                session,
                operation.id,
                from_states=from_states,
                status="succeeded" if self._succeeded(operation, result) else "failed",
                finished_at=_now(),
                provider_reference=result.provider_reference,
                failure_code=result.failure_code,
                failure_message=result.failure_message,
            )
            if done is None:
                return  # settled meanwhile (a webhook, another sender)
            await self._apply_payment(session, operation, result)

        await retrying_unit_of_work(self.sessionmaker, apply)

    def _succeeded(self, operation: OperationRow, result: ConnectorResult) -> bool:
        if operation.kind == "capture":
            return result.status is PaymentStatus.SUCCEEDED
        return result.status is PaymentStatus.CANCELLED

    async def _apply_payment(
        self, session: AsyncSession, operation: OperationRow, result: ConnectorResult
    ) -> None:
        moving_from = S.CAPTURING if operation.kind == "capture" else S.CANCELLING
        if result.status in (
            PaymentStatus.SUCCEEDED,
            PaymentStatus.CANCELLED,
            PaymentStatus.REQUIRES_ACTION,
        ) or (result.status is PaymentStatus.REQUIRES_CAPTURE and operation.kind == "capture"):
            # Where the provider says the payment is now (a refused capture stays authorised).
            row = await domain.apply_result(
                session,
                operation.payment_id,
                result,
                from_states=(moving_from,),
                captured=operation.amount if operation.kind == "capture" else None,
                capture_window_seconds=self.settings.capture_window_seconds,
            )
        else:
            # Refused without saying more: back to where the payment was, with the reason.
            row = await domain.move(
                session,
                operation.payment_id,
                to=PaymentState(operation.from_status),
                from_states=(moving_from,),
                failure_code=result.failure_code,
                failure_message=result.failure_message,
            )
        log.info(
            "%s %s of payment %s: provider says %s; payment %s",
            operation.kind,
            operation.id,
            operation.payment_id,
            result.raw_status,
            row.status if row is not None else "unchanged",
        )

    async def _apply_refund(
        self,
        session: AsyncSession,
        operation: OperationRow,
        result: RefundResult,
        from_states: tuple[str, ...],
    ) -> None:
        if result.status is RefundStatus.PENDING:
            # Accepted, settling later (a webhook, or the next reconciliation) — not re-sent.
            await store.finish_operation(
                session,
                operation.id,
                from_states=from_states,
                status="unknown",
                provider_reference=result.provider_reference,
                next_attempt_at=_after(self.settings.reconcile_interval_seconds * 4),
            )
            await refunds.settle_refund(session, operation.refund_id, result)
            return
        done = await store.finish_operation(
            session,
            operation.id,
            from_states=from_states,
            status="succeeded" if result.status is RefundStatus.SUCCEEDED else "failed",
            finished_at=_now(),
            provider_reference=result.provider_reference,
            failure_code=result.failure_code,
            failure_message=result.failure_message,
        )
        if done is not None:
            await refunds.settle_refund(session, operation.refund_id, result)

    async def _record_unknown(self, operation: OperationRow, exc: BaseException) -> None:
        log.warning(
            "%s %s: outcome unknown (%s)", operation.kind, operation.id, describe_error(exc)
        )
        async with unit_of_work(self.sessionmaker) as session:
            await store.finish_operation(
                session,
                operation.id,
                status="unknown",
                error=describe_error(exc),
                next_attempt_at=_after(self._backoff(operation.attempt_count + 1)),
            )

    async def _retry_later(self, operation: OperationRow, exc: BaseException) -> None:
        log.warning(
            "%s %s: reconciliation lookup failed (%s)",
            operation.kind,
            operation.id,
            describe_error(exc),
        )
        async with unit_of_work(self.sessionmaker) as session:
            await store.finish_operation(
                session,
                operation.id,
                from_states=("unknown",),
                status="unknown",
                next_attempt_at=_after(self._backoff(operation.attempt_count + 1)),
            )

    def _backoff(self, attempt: int) -> float:
        return backoff_delay(
            attempt,
            base=self.settings.retry_base_seconds,
            cap=self.settings.retry_max_seconds,
            rng=self._random,
        )


def _now() -> Any:
    return func.now()


def _after(seconds: float) -> Any:
    return func.now() + func.make_interval(0, 0, 0, 0, 0, 0, seconds)
