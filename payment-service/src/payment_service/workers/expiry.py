"""The authorisation-expiry voider: an authorisation left uncaptured past its window is voided.

Stripe keeps an uncaptured card authorisation for 7 days and then cancels it on its own; we void
it ourselves at `capture_window_seconds` (7 days by default), so the customer's funds are
released on our schedule, the payment says `cancelled` (with `failure_code`
`authorization_expired`) and `payment.cancelled` is published, instead of the payment sitting in
`requires_capture` forever.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from paygate_common.audit import Actor, record_audit
from paygate_common.db import unit_of_work
from paygate_common.errors import PaygateError
from paygate_common.worker import Worker
from payment_service.domain import payments as domain
from payment_service.settings import Settings
from payment_service.store import payments as store
from payment_service.workers.operations import OperationSender

log = logging.getLogger("payment_service.expiry")

EXPIRED = "authorization_expired"


class AuthorizationExpiry:
    def __init__(
        self,
        *,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        sender: OperationSender,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.sender = sender

    def worker(self) -> Worker:
        return Worker(
            "authorization-expiry",
            self.run_pass,
            interval=self.settings.expiry_interval_seconds,
            batch_size=self.settings.executor_batch_size,
        )

    async def run_pass(self) -> int:
        """Void one batch of expired authorisations (recorded in one transaction, sent after)."""
        voids: list[Any] = []
        async with unit_of_work(self.sessionmaker) as session:
            expired = await store.claim_expired_authorizations(
                session,
                limit=self.settings.executor_batch_size,
                lease_seconds=self.settings.executor_lease_seconds,
            )
            for payment in expired:
                try:
                    # One savepoint per payment: one that cannot be voided now (no provider
                    # reference yet) does not hold up the others; its lease brings it back.
                    async with session.begin_nested():
                        operation = await domain.request_void(
                            session, payment.id, source="expiry", reason=EXPIRED
                        )
                        await record_audit(
                            session,
                            producer=domain.PRODUCER,
                            action="payment.cancel_requested",
                            entity_type="payment",
                            entity_id=payment.id,
                            actor=Actor.system(),
                            details={"reason": EXPIRED},
                        )
                except PaygateError as exc:
                    log.warning("payment %s: expired, not voidable yet: %s", payment.id, exc.code)
                    continue
                if operation is not None:
                    voids.append(operation.id)
                log.info("payment %s: authorisation expired uncaptured; voiding", payment.id)
        for operation_id in voids:
            await self.sender.send(operation_id)
        return len(expired)
