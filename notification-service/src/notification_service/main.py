"""notification-service app: payment.event consumer, SMTP sender loop, customer and admin API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from notification_service.api import admin, notifications
from notification_service.channels.email import SmtpMailer
from notification_service.domain.delivery import NotificationSender
from notification_service.events.payment_events import payment_event_consumer
from notification_service.recipients import RecipientDirectory
from notification_service.settings import Settings
from paygate_common.app import create_service_app
from paygate_common.eventing import run_eventing
from paygate_common.serve import run_service

DESCRIPTION = """
Tells customers about their payments. Consumes `payment.event`; for `payment.succeeded`,
`payment.failed`, `payment.requires_action` and `payment.refunded` it queues one email per
event, looks the recipient up at user-service (cached in Redis) and sends it over SMTP with
retries and exponential backoff. After the configured attempts a notification is
dead-lettered to `notification.dlq`; operators list and replay dead letters here.
"""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    directory = RecipientDirectory(
        settings, redis=app.state.redis, ttl_seconds=settings.contact_cache_ttl_seconds
    )
    sender = NotificationSender(
        settings=settings,
        sessionmaker=app.state.sessionmaker,
        directory=directory,
        mailer=SmtpMailer(settings),
    )
    app.state.sender = sender
    try:
        async with run_eventing(app, consumers=[payment_event_consumer(settings)]):
            task = (
                asyncio.create_task(sender.run(), name="notification-sender")
                if settings.sender_enabled
                else None
            )
            try:
                yield
            finally:
                await sender.stop()
                if task is not None:
                    try:
                        await asyncio.wait_for(task, 10)
                    except TimeoutError:
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
    finally:
        await directory.aclose()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    return create_service_app(
        settings,
        title="paygate notification-service",
        description=DESCRIPTION,
        routers=[notifications.router, admin.router],
        lifespan=lifespan,
    )


def run() -> None:
    """The `notification-service` console script: uvicorn as the registry and settings say."""
    run_service("notification")
