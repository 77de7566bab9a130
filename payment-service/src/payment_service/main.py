"""payment-service app: consumers, the payment executor and reconciler, payment reads, webhooks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from paygate_common.app import create_service_app
from paygate_common.eventing import ConsumerSpec, run_eventing, supervise
from paygate_common.events import ORDER_CREATE, ORDER_EVENT, PAYMENT_DLQ
from paygate_common.http import ServiceClient
from paygate_common.serve import run_service
from payment_service.api import payments, webhooks
from payment_service.connectors import build_connector
from payment_service.connectors.stripe import StripeConnector
from payment_service.domain.executor import PaymentExecutor
from payment_service.domain.payment_context import UserDirectory
from payment_service.events.handlers import CONSUMER_NAME, order_handler
from payment_service.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        connector, transport = build_connector(settings, engine=app.state.engine)
        users_client = ServiceClient(settings, target="user", timeout=2.0, retries=2)
        executor = PaymentExecutor(
            settings=settings,
            sessionmaker=app.state.sessionmaker,
            connector=connector,
            transport=transport,
            users=UserDirectory(users_client),
        )
        app.state.connector = connector
        app.state.transport = transport
        app.state.executor = executor
        consumer = ConsumerSpec(
            name=CONSUMER_NAME,
            topics=[ORDER_CREATE, ORDER_EVENT],
            handler=order_handler(provider=connector.name),
            dlq_topic=PAYMENT_DLQ,
        )
        stopping = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        try:
            async with run_eventing(app, consumers=[consumer]):
                if settings.executor_enabled:
                    for i in range(max(1, settings.executor_concurrency)):
                        tasks.append(
                            asyncio.create_task(
                                supervise(f"payment executor {i}", executor.run, stopping),
                                name=f"payment-executor-{i}",
                            )
                        )
                    tasks.append(
                        asyncio.create_task(
                            supervise("payment reconciler", executor.run_reconciler, stopping),
                            name="payment-reconciler",
                        )
                    )
                try:
                    yield
                finally:
                    stopping.set()
                    await executor.stop()
                    if tasks:
                        _, pending = await asyncio.wait(tasks, timeout=10)
                        for task in pending:
                            task.cancel()
                        await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await users_client.aclose()
            await transport.aclose()

    app = create_service_app(
        settings,
        title="paygate payment-service",
        description=(
            "Payments lifecycle: charges orders from `order.create` through a provider connector "
            "(Stripe or the sandbox) without ever charging twice, publishes `payment.event`, "
            "and applies Stripe webhooks."
        ),
        routers=[payments.router, webhooks.router],
        lifespan=lifespan,
    )
    # Stripe's webhooks arrive whichever connector charges new payments.
    app.state.stripe_connector = StripeConnector()
    return app


def run() -> None:
    """The `payment-service` console script: uvicorn as the registry and settings say."""
    run_service("payment")
