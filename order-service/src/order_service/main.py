"""order-service app: create_app() wires the API, Kafka (outbox relay, payment.event consumer) and the sweeper."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from order_service.api.orders import router as orders_router
from order_service.domain.payment_methods import PaymentMethods
from order_service.events.handlers import payment_consumer
from order_service.settings import Settings
from order_service.sweeper import sweep_forever
from paygate_common.app import create_service_app
from paygate_common.eventing import run_eventing, supervise
from paygate_common.http import ServiceClient

DESCRIPTION = """Orders and their status. `POST /orders` writes a pending order and its
`order.create` event in one transaction (send an `Idempotency-Key` to make retries safe);
`payment.event` settles it (`paid`, `failed`, `requires_action`, `refunded`). A customer may
cancel a pending order (`order.cancelled`) or refund a paid one (`order.refund_requested`, 202);
orders left pending longer than `ORDER_SERVICE_PENDING_TIMEOUT_SECONDS` are cancelled."""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    consumers = [payment_consumer(max_attempts=settings.consumer_max_attempts)]
    users = ServiceClient(settings, target="user", timeout=2.0, retries=1)
    app.state.payment_methods = PaymentMethods(users)
    async with run_eventing(app, consumers=consumers), contextlib.aclosing(users):
        stopping = asyncio.Event()
        sweeper = asyncio.create_task(
            supervise(
                "order sweeper",
                lambda: sweep_forever(app.state.sessionmaker, settings, stopping),
                stopping,
            ),
            name="order-sweeper",
        )
        try:
            yield
        finally:
            stopping.set()
            try:
                await asyncio.wait_for(sweeper, 10)
            except (TimeoutError, asyncio.CancelledError):
                sweeper.cancel()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    return create_service_app(
        settings,
        title="paygate order-service",
        description=DESCRIPTION,
        routers=[orders_router],
        lifespan=lifespan,
        use_redis=False,
        openapi_tags=[{"name": "orders", "description": "Orders and their payment status"}],
    )


def run() -> None:
    """`order-service` console script: uvicorn on ORDER_SERVICE_HOST:ORDER_SERVICE_PORT."""
    import uvicorn

    settings = Settings()
    uvicorn.run(
        "order_service.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_config=None,
    )
