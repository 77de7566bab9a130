"""order-service: the orders API, the payment.event consumer, the outbox relay and the sweeper."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from order_service.api.orders import router as orders_router
from order_service.domain.payment_methods import PaymentMethods
from order_service.events.handlers import payment_consumer
from order_service.settings import Settings
from order_service.workers.sweeper import sweeper_worker
from paygate_common.app import create_service_app
from paygate_common.http import ServiceClient
from paygate_common.serve import run_service

DESCRIPTION = """Orders and their status. `POST /orders` writes a pending order and its
`order.create` event in one transaction (send an `Idempotency-Key` to make retries safe);
`payment.event` settles it (`paid`, `failed`, `requires_action`, `refunded`). A customer may
cancel a pending order (`order.cancelled`) or refund a paid one (`order.refund_requested`, 202);
orders left pending longer than `ORDER_SERVICE_PENDING_TIMEOUT_SECONDS` are cancelled."""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """What the routes need beyond the kit's engine: the saved-method check at user-service."""
    users = ServiceClient(app.state.settings, target="user", timeout=2.0, retries=1)
    app.state.payment_methods = PaymentMethods(users)
    async with contextlib.aclosing(users):
        yield


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    return create_service_app(
        settings,
        title="paygate order-service",
        description=DESCRIPTION,
        routers=[orders_router],
        lifespan=lifespan,
        consumers=lambda app: [payment_consumer(max_attempts=settings.consumer_max_attempts)],
        workers=lambda app: [sweeper_worker(app.state.sessionmaker, settings)],
        use_redis=False,
        openapi_tags=[{"name": "orders", "description": "Orders and their payment status"}],
    )


def run() -> None:
    """The `order-service` console script: uvicorn as the registry and settings say."""
    run_service("order")
