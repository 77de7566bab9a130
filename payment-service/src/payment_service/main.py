"""payment-service app: consumers, the executor, the operation sender, the expiry voider and the abandoned-redirect sweeper, the payments API, webhooks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from paygate_common.app import create_service_app
from paygate_common.eventing import ConsumerSpec
from paygate_common.events import CONFIG_CHANGED, ORDER_CREATE, ORDER_EVENT, PAYMENT_DLQ
from paygate_common.http import ServiceClient
from paygate_common.serve import run_service
from paygate_common.worker import Worker
from payment_service.api import checkout, payments, provider_returns, webhooks
from payment_service.connectors import build_connectors
from payment_service.connectors.stripe import StripeConnector
from payment_service.domain.payment_context import UserDirectory
from payment_service.domain.payments import WORK_CHANNEL
from payment_service.domain.providers import ProviderChoice
from payment_service.events.handlers import CONSUMER_NAME, order_handler
from payment_service.settings import Settings
from payment_service.web import BUTTON_JS_DIR, STATIC_DIR
from payment_service.workers.abandoned import AbandonedActions
from payment_service.workers.executor import PaymentExecutor
from payment_service.workers.expiry import AuthorizationExpiry
from payment_service.workers.operations import OperationSender
from payment_service.workers.redirects import RedirectCompleter


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        providers = build_connectors(settings, engine=app.state.engine)
        connector, transport = providers[settings.connector]
        users_client = ServiceClient(settings, target="user", timeout=2.0, retries=2)
        admin_client = ServiceClient(settings, target="admin", timeout=2.0, retries=0)
        await app.state.provider_choice.load(admin_client)
        users = UserDirectory(users_client)
        executor = PaymentExecutor(
            settings=settings,
            sessionmaker=app.state.sessionmaker,
            connector=connector,
            transport=transport,
            users=users,
            providers=providers,
        )
        operations = OperationSender(
            settings=settings,
            sessionmaker=app.state.sessionmaker,
            connector=connector,
            transport=transport,
            providers=providers,
        )
        expiry = AuthorizationExpiry(
            settings=settings, sessionmaker=app.state.sessionmaker, sender=operations
        )
        app.state.connector = connector
        app.state.transport = transport
        app.state.provider_pairs = providers
        app.state.redirects = RedirectCompleter(
            settings=settings, sessionmaker=app.state.sessionmaker, providers=providers
        )
        app.state.abandoned = AbandonedActions(
            settings=settings,
            sessionmaker=app.state.sessionmaker,
            providers=providers,
            redirects=app.state.redirects,
        )
        app.state.admin_client = admin_client
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
            await admin_client.aclose()
            for _, provider_transport in providers.values():
                await provider_transport.aclose()

    def consumers(app: FastAPI) -> list[ConsumerSpec]:
        return [
            ConsumerSpec(
                name=CONSUMER_NAME,
                topics=[ORDER_CREATE, ORDER_EVENT, CONFIG_CHANGED],
                handler=order_handler(
                    provider=app.state.provider_choice, on_recorded=app.state.wake_workers
                ),
                dlq_topic=PAYMENT_DLQ,
            )
        ]

    def workers(app: FastAPI) -> list[Worker]:
        if not settings.executor_enabled:
            return []
        engine = app.state.engine

        async def reload_provider_choice() -> int:
            # config.changed reaches one replica of the consumer group; every replica also
            # re-reads the key now and then, so all of them converge.
            await app.state.provider_choice.load(app.state.admin_client)
            return 0

        return [
            *app.state.executor.workers(engine=engine, channel=WORK_CHANNEL),
            app.state.operations.worker(engine=engine, channel=WORK_CHANNEL),
            app.state.expiry.worker(),
            app.state.abandoned.worker(),
            Worker(
                "payment-provider-config",
                reload_provider_choice,
                interval=settings.provider_config_reload_seconds,
            ),
        ]

    app = create_service_app(
        settings,
        title="paygate payment-service",
        description=(
            "Payments lifecycle: direct payments (`POST /payments`) and order charges from "
            "`order.create`, authorised through a provider connector (Stripe, PayPal, SSLCommerz "
            "or the sandbox) "
            "without ever charging twice; manual capture, void and partial or full refunds, "
            "each atomic and idempotent; `payment.*` and `refund.*` on `payment.event`; Stripe "
            "webhooks applied to the same state machine; the hosted checkout page (`/checkout/{id}`) "
            "and the embeddable button script (`/checkout/js/v1/button.js`)."
        ),
        routers=[payments.router, webhooks.router, provider_returns.router, checkout.router],
        lifespan=lifespan,
        consumers=consumers,
        workers=workers,
    )
    # The checkout page's assets (vendored, no CDN) and the merchant's button script.
    app.mount("/checkout/static", StaticFiles(directory=str(STATIC_DIR)), name="checkout-static")
    app.mount("/checkout/js", StaticFiles(directory=str(BUTTON_JS_DIR)), name="checkout-js")
    # Stripe's webhooks arrive whichever connector charges new payments.
    app.state.stripe_connector = StripeConnector()
    # Which providers take new payments, and the default (`payments.providers`, live).
    app.state.provider_choice = ProviderChoice(
        enabled=list(settings.enabled_providers), default=settings.connector
    )
    app.state.providers = app.state.provider_choice
    return app


def run() -> None:
    """The `payment-service` console script: uvicorn as the registry and settings say."""
    run_service("payment")
