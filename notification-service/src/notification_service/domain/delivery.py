"""The sender loop: claims due notifications, emails them, records every attempt's outcome.

Claiming moves rows to `sending` in a short transaction (`FOR UPDATE SKIP LOCKED`, so replicas
share the work); the SMTP conversation happens outside any transaction; the outcome is written
in a second transaction: `sent`, `failed` with the next attempt scheduled (exponential
backoff), or `dead_lettered` together with the `notification.dlq` outbox row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notification_service.channels.email import (
    PermanentDeliveryError,
    SmtpMailer,
    build_message,
)
from notification_service.domain.rendering import render_email
from notification_service.events.dead_letters import publish_dead_letter
from notification_service.recipients import Contact, RecipientDirectory, RecipientUnknown
from notification_service.settings import Settings
from notification_service.store import notifications as store
from notification_service.store.tables import Notification
from paygate_common.db import unit_of_work
from paygate_common.events import EventEnvelope, PaymentEvent
from paygate_common.logging import mask

log = logging.getLogger("notification_service.delivery")

DELIVERY_ATTEMPTS = Counter(
    "paygate_notification_delivery_attempts_total",
    "Notification send attempts by channel and outcome (sent, failed, dead_lettered)",
    ["channel", "outcome"],
)

MAX_ERROR_CHARS = 1000


def backoff_seconds(attempt: int, *, base: float, cap: float) -> float:
    """Wait after the `attempt`-th failure: base, 2·base, 4·base, … never more than `cap`."""
    return float(min(cap, base * 2 ** max(0, attempt - 1)))


class _Failure(Exception):
    def __init__(self, error: str, *, permanent: bool) -> None:
        super().__init__(error)
        self.error = mask(error)[:MAX_ERROR_CHARS]
        self.permanent = permanent


class NotificationSender:
    """Background delivery; `run()` until `stop()`, or `deliver_due()` for one pass."""

    def __init__(
        self,
        *,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        directory: RecipientDirectory,
        mailer: SmtpMailer,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.directory = directory
        self.mailer = mailer
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        # Bounded so a large batch cannot take every pooled database connection.
        self._parallel = asyncio.Semaphore(4)

    # -- the loop ----------------------------------------------------------------------------

    def wake(self) -> None:
        self._wakeup.set()

    def wake_soon(self, delay: float = 0.1) -> None:
        """Wake after the caller's transaction has had time to commit (saves one poll)."""
        asyncio.get_running_loop().call_later(delay, self._wakeup.set)

    async def stop(self) -> None:
        self._stopping.set()
        self._wakeup.set()

    async def run(self) -> None:
        self._stopping.clear()
        while not self._stopping.is_set():
            self._wakeup.clear()
            try:
                delivered = await self.deliver_due()
            except Exception:  # the database is having a moment: log, wait, try again
                log.exception("notification sender pass failed")
                delivered = 0
            if delivered >= self.settings.sender_batch_size:
                continue  # more may be waiting right now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wakeup.wait(), self.settings.sender_poll_interval_seconds
                )

    async def deliver_due(self) -> int:
        """One pass: claim a batch of due notifications and attempt each; returns how many."""
        async with unit_of_work(self.sessionmaker) as session:
            claimed = await store.claim_due(
                session,
                limit=self.settings.sender_batch_size,
                lease_seconds=self.settings.sending_lease_seconds,
            )
        if claimed:
            await asyncio.gather(*(self._attempt(n) for n in claimed))
        return len(claimed)

    # -- one attempt -------------------------------------------------------------------------

    async def _attempt(self, notification: Notification) -> None:
        async with self._parallel:
            started_at = datetime.now(UTC)
            contact: Contact | None = None
            try:
                contact = await self._recipient(notification)
                await self._send(notification, contact)
            except _Failure as failure:
                await self._record_failure(notification, failure, contact, started_at)
                return
            except Exception as exc:  # a bug must cost an attempt, not the loop
                log.exception("notification %s: unexpected delivery error", notification.id)
                unexpected = _Failure(f"{type(exc).__name__}: {exc}", permanent=False)
                await self._record_failure(notification, unexpected, contact, started_at)
                return
            await self._record_sent(notification, contact, started_at)

    async def _recipient(self, notification: Notification) -> Contact:
        try:
            return await self.directory.contact_for(notification.user_id)
        except RecipientUnknown as exc:
            raise _Failure(f"recipient unknown: {exc}", permanent=True) from None
        except Exception as exc:
            raise _Failure(f"recipient lookup failed: {exc}", permanent=False) from None

    async def _send(self, notification: Notification, contact: Contact) -> None:
        source = EventEnvelope.model_validate(notification.source_event)
        payment = PaymentEvent.model_validate(source.payload)
        rendered = render_email(source.event_type, payment, recipient_name=contact.full_name)
        message = build_message(
            notification_id=notification.id,
            from_address=self.settings.smtp_from_address,
            to_address=contact.email,
            to_name=contact.full_name,
            email=rendered,
        )
        try:
            await self.mailer.send(message)
        except PermanentDeliveryError as exc:
            raise _Failure(str(exc), permanent=True) from None
        except Exception as exc:
            raise _Failure(str(exc), permanent=False) from None

    async def _record_sent(
        self, notification: Notification, contact: Contact, started_at: datetime
    ) -> None:
        # Right after the server accepted: the window for a duplicate send is this transaction.
        async with unit_of_work(self.sessionmaker) as session:
            await store.record_attempt(
                session,
                notification_id=notification.id,
                attempt_no=notification.attempts,
                replay_no=notification.replay_count,
                outcome="sent",
                error=None,
                started_at=started_at,
            )
            marked = await store.mark_sent(
                session, notification.id, attempt=notification.attempts, recipient=contact.email
            )
        DELIVERY_ATTEMPTS.labels(notification.channel, "sent").inc()
        if not marked:
            log.warning("notification %s was sent but reclaimed meanwhile", notification.id)
        log.info("notification %s sent (attempt %d)", notification.id, notification.attempts)

    async def _record_failure(
        self,
        notification: Notification,
        failure: _Failure,
        contact: Contact | None,
        started_at: datetime,
    ) -> None:
        attempt = notification.attempts
        recipient = contact.email if contact else None
        give_up = failure.permanent or attempt >= self.settings.max_attempts
        async with unit_of_work(self.sessionmaker) as session:
            await store.record_attempt(
                session,
                notification_id=notification.id,
                attempt_no=attempt,
                replay_no=notification.replay_count,
                outcome="failed",
                error=failure.error,
                started_at=started_at,
            )
            if give_up:
                dead = await store.mark_dead_lettered(
                    session,
                    notification.id,
                    attempt=attempt,
                    error=failure.error,
                    recipient=recipient,
                )
                if dead is not None:
                    await publish_dead_letter(session, dead, error=failure.error, attempts=attempt)
            else:
                await store.mark_failed(
                    session,
                    notification.id,
                    attempt=attempt,
                    error=failure.error,
                    retry_in_seconds=backoff_seconds(
                        attempt,
                        base=self.settings.backoff_base_seconds,
                        cap=self.settings.backoff_max_seconds,
                    ),
                    recipient=recipient,
                )
        DELIVERY_ATTEMPTS.labels(
            notification.channel, "dead_lettered" if give_up else "failed"
        ).inc()
        log.warning(
            "notification %s attempt %d failed%s: %s",
            notification.id,
            attempt,
            " (dead-lettered)" if give_up else "",
            failure.error,
        )
