"""The notification sender on the shared worker loop: sends due notifications on their channel.

A pass claims a batch (moved to `sending` under a lease, `FOR UPDATE SKIP LOCKED`, so replicas
share the work) in a short transaction; the provider conversation (SMTP, the SMS API, Web Push)
happens outside any transaction; each outcome is written in a transaction of its own: `sent`,
`skipped` (nothing to send to), `failed` with the next attempt after the shared jittered backoff,
or `dead_lettered` together with the `notification.dlq` outbox row. A user-service outage is not
the notification's fault: the attempt is handed back, however long the outage lasts.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import orjson
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from notification_service.channels.email import (
    PermanentDeliveryError,
    SmtpMailer,
    build_message,
)
from notification_service.channels.push import SubscriptionGone, WebPushClient
from notification_service.channels.sms import E164, TwilioSmsClient
from notification_service.domain.preferences import push_targets
from notification_service.domain.rendering import RenderedEmail, message_context, render_message
from notification_service.domain.status import NotificationStatus
from notification_service.events.dead_letters import publish_dead_letter
from notification_service.recipients import (
    Contact,
    RecipientDirectory,
    RecipientLookupFailed,
    RecipientUnknown,
)
from notification_service.settings import Settings
from notification_service.store import notifications as store
from notification_service.store import templates as template_store
from notification_service.store.preferences import delete_subscription
from notification_service.store.tables import Channel, Notification
from notification_service.wakeups import NOTIFICATIONS_DUE
from paygate_common.crypto import EnvelopeCipher
from paygate_common.db import unit_of_work
from paygate_common.events import EventEnvelope, PaymentEvent
from paygate_common.logging import mask
from paygate_common.worker import Worker, backoff_delay, describe_error

log = logging.getLogger("notification_service.delivery")

DELIVERY_ATTEMPTS = Counter(
    "paygate_notification_delivery_attempts_total",
    "Notification send attempts by channel and outcome "
    "(sent, failed, dead_lettered, skipped, deferred)",
    ["channel", "outcome"],
)

MAX_ERROR_CHARS = 1000
MAX_PUSH_TITLE = 120
MAX_PUSH_BODY = 1000
Templates = dict[tuple[str, str], dict[str, str]]


class _Failure(Exception):
    def __init__(self, error: str, *, permanent: bool) -> None:
        super().__init__(error)
        self.error = mask(error)[:MAX_ERROR_CHARS]
        self.permanent = permanent


class _Skip(Exception):
    """Nothing to send this channel to (no phone, no push subscription left)."""


class _Deferred(Exception):
    """user-service did not answer: not an attempt, try again a little later."""


class NotificationSender:
    """`run_pass()` is one pass; `worker()` runs it on the shared loop (LISTEN + timer)."""

    def __init__(
        self,
        *,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        directory: RecipientDirectory,
        mailer: SmtpMailer,
        sms: TwilioSmsClient,
        push: WebPushClient,
        cipher: EnvelopeCipher,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.directory = directory
        self.mailer = mailer
        self.sms = sms
        self.push = push
        self.cipher = cipher
        # Bounded so a large batch cannot take every pooled database connection.
        self._parallel = asyncio.Semaphore(4)

    def worker(self, engine: AsyncEngine | None) -> Worker:
        return Worker(
            "notification-sender",
            self.run_pass,
            interval=self.settings.sender_poll_interval_seconds,
            batch_size=self.settings.sender_batch_size,
            engine=engine,
            channel=NOTIFICATIONS_DUE if engine is not None else None,
        )

    async def run_pass(self) -> int:
        """Claim a batch of due notifications and attempt each; returns how many."""
        async with unit_of_work(self.sessionmaker) as session:
            claimed = await store.claim_due(
                session,
                limit=self.settings.sender_batch_size,
                lease_seconds=self.settings.sending_lease_seconds,
            )
            # The live templates once per batch: a saved template applies from the next batch.
            templates: Templates = (
                {
                    k: dict(v.parts)
                    for k, v in (await template_store.latest_templates(session)).items()
                }
                if claimed
                else {}
            )
        if claimed:
            await asyncio.gather(*(self._attempt(n, templates) for n in claimed))
        return len(claimed)

    # -- one attempt -------------------------------------------------------------------------

    async def _attempt(self, notification: Notification, templates: Templates) -> None:
        async with self._parallel:
            started_at = datetime.now(UTC)
            contact: Contact | None = None
            recipient: str | None = None
            try:
                contact = await self._recipient(notification)
                recipient = await self._send(notification, contact, templates)
            except _Deferred as deferred:
                await self._hand_back(notification, str(deferred))
                return
            except _Skip as skip:
                await self._record_skipped(notification, str(skip), started_at)
                return
            except _Failure as failure:
                await self._record_failure(notification, failure, contact, started_at)
                return
            except Exception as exc:  # a bug must cost an attempt, not the loop
                log.exception("notification %s: unexpected delivery error", notification.id)
                unexpected = _Failure(describe_error(exc), permanent=False)
                await self._record_failure(notification, unexpected, contact, started_at)
                return
            await self._record_sent(notification, recipient or "", started_at)

    async def _recipient(self, notification: Notification) -> Contact:
        try:
            return await self.directory.contact_for(notification.user_id)
        except RecipientUnknown as exc:
            raise _Failure(f"recipient unknown: {exc}", permanent=True) from None
        except RecipientLookupFailed as exc:
            raise _Deferred(f"recipient lookup failed: {exc}") from None
        except Exception as exc:
            raise _Deferred(f"recipient lookup failed: {describe_error(exc)}") from None

    async def _send(
        self, notification: Notification, contact: Contact, templates: Templates
    ) -> str:
        """Send on the notification's channel; returns the recipient to record."""
        source = EventEnvelope.model_validate(notification.source_event)
        payment = PaymentEvent.model_validate(source.payload)
        channel = Channel(notification.channel)
        context = message_context(source.event_type, payment, recipient_name=contact.full_name)
        parts = render_message(
            source.event_type, channel.value, context, templates.get((source.event_type, channel))
        )
        try:
            if channel is Channel.EMAIL:
                await self.mailer.send(
                    build_message(
                        notification_id=notification.id,
                        from_address=self.settings.smtp_from_address,
                        to_address=contact.email,
                        to_name=contact.full_name,
                        email=RenderedEmail(
                            subject=parts["subject"], text=parts["text"], html=parts["html"]
                        ),
                    )
                )
                return contact.email
            if channel is Channel.SMS:
                if not contact.phone or not E164.match(contact.phone):
                    raise _Skip("no E.164 phone number on the profile")
                await self.sms.send(to=contact.phone, body=parts["text"])
                return contact.phone
            return await self._send_push(notification, source, payment, parts)
        except (_Skip, _Failure):
            raise
        except PermanentDeliveryError as exc:
            raise _Failure(str(exc), permanent=True) from None
        except Exception as exc:
            raise _Failure(describe_error(exc), permanent=False) from None

    async def _send_push(
        self,
        notification: Notification,
        source: EventEnvelope,
        payment: PaymentEvent,
        parts: dict[str, str],
    ) -> str:
        async with unit_of_work(self.sessionmaker) as session:
            targets = await push_targets(
                session=session, cipher=self.cipher, user_id=notification.user_id
            )
        if not targets:
            raise _Skip("no push subscription")
        # Push services must take 4096 bytes at most (RFC 8030 §7.2); encryption adds ~100.
        payload = orjson.dumps(
            {
                "title": parts["title"][:MAX_PUSH_TITLE],
                "body": parts["text"][:MAX_PUSH_BODY],
                "data": {
                    "notification_id": str(notification.id),
                    "event_type": source.event_type,
                    "payment_id": str(payment.payment_id),
                    "order_id": str(payment.order_id) if payment.order_id else None,
                },
            }
        )
        delivered, errors, gone = 0, [], []
        for subscription_id, target in targets:
            try:
                await self.push.send(target, payload)
                delivered += 1
            except SubscriptionGone:
                gone.append(subscription_id)
            except Exception as exc:
                errors.append(describe_error(exc))
        if gone:  # the browser unsubscribed: never push there again
            async with unit_of_work(self.sessionmaker) as session:
                for subscription_id in gone:
                    await delete_subscription(session, subscription_id)
        if delivered:
            return f"push:{delivered}"
        if errors:
            raise _Failure("; ".join(errors), permanent=False)
        raise _Skip("every push subscription is gone")

    # -- outcomes ----------------------------------------------------------------------------

    async def _hand_back(self, notification: Notification, reason: str) -> None:
        async with unit_of_work(self.sessionmaker) as session:
            await store.hand_back(
                session,
                notification.id,
                attempt=notification.attempts,
                error=mask(reason)[:MAX_ERROR_CHARS],
                retry_in_seconds=self.settings.contact_retry_seconds,
            )
        DELIVERY_ATTEMPTS.labels(notification.channel, "deferred").inc()
        log.warning("notification %s deferred (not an attempt): %s", notification.id, reason)

    async def _record_skipped(
        self, notification: Notification, reason: str, started_at: datetime
    ) -> None:
        await self._record_final(notification, NotificationStatus.SKIPPED, reason, started_at)
        log.info("notification %s skipped: %s", notification.id, reason)

    async def _record_sent(
        self, notification: Notification, recipient: str, started_at: datetime
    ) -> None:
        # Right after the provider accepted: the window for a duplicate send is this transaction.
        marked = await self._record_final(
            notification, NotificationStatus.SENT, recipient, started_at
        )
        if not marked:
            log.warning("notification %s was sent but reclaimed meanwhile", notification.id)
        log.info("notification %s sent (attempt %d)", notification.id, notification.attempts)

    async def _record_final(
        self,
        notification: Notification,
        status: NotificationStatus,
        detail: str,
        started_at: datetime,
    ) -> bool:
        """The attempt row and `sending` → `sent`/`skipped` in one transaction."""
        sent = status is NotificationStatus.SENT
        async with unit_of_work(self.sessionmaker) as session:
            await store.record_attempt(
                session,
                notification_id=notification.id,
                attempt_no=notification.attempts,
                replay_no=notification.replay_count,
                outcome=status.value,
                error=None if sent else detail,
                started_at=started_at,
            )
            if sent:
                marked = await store.mark_sent(
                    session, notification.id, attempt=notification.attempts, recipient=detail
                )
            else:
                marked = await store.mark_skipped(
                    session, notification.id, attempt=notification.attempts, reason=detail
                )
        DELIVERY_ATTEMPTS.labels(notification.channel, status.value).inc()
        return marked

    async def _record_failure(
        self,
        notification: Notification,
        failure: _Failure,
        contact: Contact | None,
        started_at: datetime,
    ) -> None:
        attempt = notification.attempts
        recipient = _recipient_of(notification, contact)
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
                    retry_in_seconds=backoff_delay(
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
            "notification %s (%s) attempt %d failed%s: %s",
            notification.id,
            notification.channel,
            attempt,
            " (dead-lettered)" if give_up else "",
            failure.error,
        )


def _recipient_of(notification: Notification, contact: Contact | None) -> str | None:
    if contact is None:
        return None
    if notification.channel == Channel.EMAIL:
        return contact.email
    if notification.channel == Channel.SMS:
        return contact.phone
    return None
