"""payment-service app: consumers, the executor, the operation sender and the expiry voider, the payments API, webhooks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from paygate_common.app import create_service_app
from paygate_common.eventing import ConsumerSpec
from paygate_common.events import ORDER_CREATE, ORDER_EVENT, PAYMENT_DLQ
from paygate_common.http import ServiceClient
from paygate_common.serve import run_service
from paygate_common.worker import Worker
from payment_service.api import checkout, payments, webhooks
from payment_service.connectors import build_connector
from payment_service.connectors.stripe import StripeConnector
from payment_service.domain.payment_context import UserDirectory
from payment_service.domain.payments import WORK_CHANNEL
from payment_service.events.handlers import CONSUMER_NAME, order_handler
from payment_service.settings import Settings
from payment_service.web import BUTTON_JS_DIR, STATIC_DIR
from payment_service.workers.executor import PaymentExecutor
from payment_service.workers.expiry import AuthorizationExpiry
from payment_service.workers.operations import OperationSender


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        connector, transport = build_connector(settings, engine=app.state.engine)
        users_client = ServiceClient(settings, target="user", timeout=2.0, retries=2)
        users = UserDirectory(users_client)
        executor = PaymentExecutor(
            settings=settings,
            sessionmaker=app.state.sessionmaker,
            connector=connector,
            transport=transport,
            users=users,
        )
        operations = OperationSender(
            settings=settings,
            sessionmaker=app.state.sessionmaker,
            connector=connector,
            transport=transport,
        )
        expiry = AuthorizationExpiry(
            settings=settings, sessionmaker=app.state.sessionmaker, sender=operations
        )
        app.state.connector = connector
        app.state.transport = transport
        app.state.executor = executor
        app.state.operations = operations
        app.state.users = users
        app.state.expiry = expiry

        def wake() -> None:
            executor.wake()
            operations.wake()

        app.state.wake_workers = wake
        try:
            yield
        finally:
            await users_client.aclose()
            await transport.aclose()

    def consumers(app: FastAPI) -> list[ConsumerSpec]:
        return [
            ConsumerSpec(
                name=CONSUMER_NAME,
                topics=[ORDER_CREATE, ORDER_EVENT],
                handler=order_handler(
                    provider=app.state.connector.name, on_recorded=app.state.wake_workers
                ),
                dlq_topic=PAYMENT_DLQ,
            )
        ]

    def workers(app: FastAPI) -> list[Worker]:
        if not settings.executor_enabled:
            return []
        engine = app.state.engine
        return [
            *app.state.executor.workers(engine=engine, channel=WORK_CHANNEL),
            app.state.operations.worker(engine=engine, channel=WORK_CHANNEL),
            app.state.expiry.worker(),
        ]

    app = create_service_app(
        settings,
        title="paygate payment-service",
        description=(
            "Payments lifecycle: direct payments (`POST /payments`) and order charges from "
            "`order.create`, authorised through a provider connector (Stripe or the sandbox) "
            "without ever charging twice; manual capture, void and partial or full refunds, "
            "each atomic and idempotent; `payment.*` and `refund.*` on `payment.event`; Stripe "
            "webhooks applied to the same state machine; the hosted checkout page (`/checkout/{id}`) "
            "and the embeddable button script (`/checkout/js/v1/button.js`)."
        ),
        routers=[payments.router, webhooks.router, checkout.router],
        lifespan=lifespan,
        consumers=consumers,
        workers=workers,
    )
    # The checkout page's assets (vendored, no CDN) and the merchant's button script.
    app.mount("/checkout/static", StaticFiles(directory=str(STATIC_DIR)), name="checkout-static")
    app.mount("/checkout/js", StaticFiles(directory=str(BUTTON_JS_DIR)), name="checkout-js")
    # Stripe's webhooks arrive whichever connector charges new payments.
    app.state.stripe_connector = StripeConnector()
    return app


def run() -> None:
    """The `payment-service` console script: uvicorn as the registry and settings say."""
    run_service("payment")
