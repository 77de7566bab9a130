"""notification-service: the event consumer, the notification and webhook senders, the API."""

from __future__ import annotations

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
from paygate_common.app import BackgroundLoop, create_service_app
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
    """The senders and the provider clients they hold; the kit runs their workers after this."""
    settings: Settings = app.state.settings
    directory = RecipientDirectory(
        settings, redis=app.state.redis, ttl_seconds=settings.contact_cache_ttl_seconds
    )
    async with (
        contextlib.aclosing(directory),
        contextlib.aclosing(TwilioSmsClient(settings)) as sms,
        contextlib.aclosing(WebPushClient(settings, app.state.vapid)) as push,
        contextlib.aclosing(SmtpMailer(settings)) as mailer,
        contextlib.aclosing(
            WebhookSender(
                settings=settings, sessionmaker=app.state.sessionmaker, cipher=app.state.cipher
            )
        ) as webhook_sender,
    ):
        app.state.sender = NotificationSender(
            settings=settings,
            sessionmaker=app.state.sessionmaker,
            directory=directory,
            mailer=mailer,
            sms=sms,
            push=push,
            cipher=app.state.cipher,
        )
        app.state.webhook_sender = webhook_sender
        yield


def workers(app: FastAPI) -> list[BackgroundLoop]:
    settings: Settings = app.state.settings
    loops: list[BackgroundLoop] = []
    if settings.sender_enabled:
        loops.append(app.state.sender.worker(app.state.engine))
    if settings.webhook_worker_enabled:
        loops.append(app.state.webhook_sender.worker(app.state.engine))
    return loops


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = create_service_app(
        settings,
        title="paygate notification-service",
        description=DESCRIPTION,
        routers=[notifications.router, webhooks.router, admin.router],
        lifespan=lifespan,
        consumers=lambda app: [payment_event_consumer(settings)],
        workers=workers,
        # A send on the wire when the service stops gets its full timeout to be recorded.
        stop_timeout=settings.webhook_timeout_seconds + 5,
    )
    # Built once, before the lifespan: a misconfigured key stops the start, not the first send.
    app.state.cipher = settings.cipher()
    app.state.vapid = load_vapid(settings)
    return app


def run() -> None:
    """The `notification-service` console script: uvicorn as the registry and settings say."""
    run_service("notification")
