"""order-service app: create_app() wires the API, Kafka (outbox relay, payment.event consumer) and the sweeper."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from order_service.api.orders import router as orders_router
from order_service.events.handlers import payment_consumer
from order_service.settings import Settings
from order_service.sweeper import sweep_forever
from paygate_common.app import create_service_app
from paygate_common.eventing import run_eventing, supervise
from paygate_common.serve import run_service

DESCRIPTION = """Orders and their status. `POST /orders` writes a pending order and its
`order.create` event in one transaction (send an `Idempotency-Key` to make retries safe);
`payment.event` settles it (`paid`, `failed`, `requires_action`, `refunded`); orders left
pending longer than `ORDER_SERVICE_PENDING_TIMEOUT_SECONDS` are cancelled (`order.cancelled`)."""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    consumers = [payment_consumer(max_attempts=settings.consumer_max_attempts)]
    async with run_eventing(app, consumers=consumers):
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
    """The `order-service` console script: uvicorn as the registry and settings say."""
    run_service("order")
