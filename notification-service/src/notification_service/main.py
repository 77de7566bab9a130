"""notification-service app: payment.event consumer, SMTP sender loop, customer and admin API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from notification_service.api import admin, notifications, webhooks
from notification_service.channels.email import SmtpMailer
from notification_service.channels.push import WebPushClient, load_vapid
from notification_service.channels.sms import TwilioSmsClient
from notification_service.events.payment_events import payment_event_consumer
from notification_service.recipients import RecipientDirectory
from notification_service.settings import Settings
from notification_service.workers.notifications import NotificationSender
from notification_service.workers.webhooks import WebhookSender
from paygate_common.app import create_service_app
from paygate_common.eventing import run_eventing, supervise
from paygate_common.serve import run_service

DESCRIPTION = """
Tells customers about their payments and merchants about their events. Consumes
`payment.event`, `order.event` and `order.create`. For `payment.succeeded`, `payment.failed`,
`payment.requires_action` and `payment.refunded` it queues one notification per channel the
customer wants (email over SMTP, SMS through a Twilio-shaped API, Web Push), rendered from
sandboxed templates operators can edit, with retries and exponential backoff; after the
configured attempts a notification is dead-lettered to `notification.dlq`. Every payment,
refund and order event of a merchant with a webhook endpoint becomes a signed Standard
Webhooks delivery, retried on a schedule and listed in the delivery log.
"""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    directory = RecipientDirectory(
        settings, redis=app.state.redis, ttl_seconds=settings.contact_cache_ttl_seconds
    )
    cipher = app.state.cipher
    sms = TwilioSmsClient(settings)
    push = WebPushClient(settings, app.state.vapid)
    sender = NotificationSender(
        settings=settings,
        sessionmaker=app.state.sessionmaker,
        directory=directory,
        mailer=SmtpMailer(settings),
        sms=sms,
        push=push,
        cipher=cipher,
    )
    app.state.sender = sender
    webhook_sender = WebhookSender(
        settings=settings, sessionmaker=app.state.sessionmaker, cipher=cipher
    )
    app.state.webhook_sender = webhook_sender

    def wake_senders() -> None:
        sender.wake()
        webhook_sender.wake()

    stopping = asyncio.Event()
    try:
        consumer = payment_event_consumer(settings, on_queued=wake_senders)
        async with run_eventing(app, consumers=[consumer]):
            tasks: list[asyncio.Task[None]] = []
            if settings.sender_enabled:
                tasks.append(asyncio.create_task(sender.run(), name="notification-sender"))
            if settings.webhook_worker_enabled:
                tasks.append(
                    asyncio.create_task(
                        supervise("webhook sender", webhook_sender.run, stopping),
                        name="webhook-sender",
                    )
                )
            try:
                yield
            finally:
                stopping.set()
                await sender.stop()
                await webhook_sender.stop()
                for task in tasks:
                    try:
                        await asyncio.wait_for(task, settings.webhook_timeout_seconds + 5)
                    except TimeoutError:
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
    finally:
        await webhook_sender.aclose()
        await sms.aclose()
        await push.aclose()
        await directory.aclose()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = create_service_app(
        settings,
        title="paygate notification-service",
        description=DESCRIPTION,
        routers=[notifications.router, webhooks.router, admin.router],
        lifespan=lifespan,
    )
    # Built once, before the lifespan: a misconfigured key stops the start, not the first send.
    app.state.cipher = settings.cipher()
    app.state.vapid = load_vapid(settings)
    return app


def run() -> None:
    """The `notification-service` console script: uvicorn as the registry and settings say."""
    run_service("notification")
