"""audit-service app: create_app() wires the admin API, the all-topics consumer and the workers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from audit_service.api.audit import router as audit_router
from audit_service.events.handlers import audit_consumer
from audit_service.settings import Settings
from audit_service.store.role import act_as_role
from audit_service.workers.checkpoints import checkpoint_forever
from audit_service.workers.retention import archive_forever
from paygate_common.app import create_service_app
from paygate_common.eventing import run_eventing, supervise
from paygate_common.serve import run_service

DESCRIPTION = """The audit trail of the whole suite. Every event on every topic (orders, payments,
refunds, users, configuration, `audit.event`) becomes one record, masked before it is stored
(no card number, secret, token or full email), linked into a SHA-256 hash chain and written to an
insert-only table. Signed checkpoints expose a removed tail; `GET /admin/audit/verify` walks the
chain. Admin only."""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    act_as_role(app.state.engine, settings.db_role)
    consumers = (
        [
            audit_consumer(
                max_attempts=settings.consumer_max_attempts,
                batch_size=settings.consumer_batch_size,
                # Kafka client overrides (a test's own group id and short session timeout).
                consumer_options=getattr(app.state, "consumer_options", None),
            )
        ]
        if settings.consumer_enabled
        else []
    )
    # The service publishes nothing of its own: no outbox relay.
    async with run_eventing(app, relay=False, consumers=consumers):
        stopping = asyncio.Event()
        sessionmaker = app.state.sessionmaker
        workers = [
            asyncio.create_task(
                supervise(
                    "audit checkpoints",
                    lambda: checkpoint_forever(sessionmaker, settings, stopping),
                    stopping,
                ),
                name="audit-checkpoints",
            ),
            asyncio.create_task(
                supervise(
                    "audit retention",
                    lambda: archive_forever(sessionmaker, settings, stopping),
                    stopping,
                ),
                name="audit-retention",
            ),
        ]
        app.state.workers = workers
        try:
            yield
        finally:
            stopping.set()
            _, pending = await asyncio.wait(workers, timeout=10)
            for task in pending:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    return create_service_app(
        settings,
        title="paygate audit-service",
        description=DESCRIPTION,
        routers=[audit_router],
        lifespan=lifespan,
        use_redis=False,
        openapi_tags=[{"name": "audit", "description": "The tamper-evident audit trail (admin)"}],
    )


def run() -> None:
    """The `audit-service` console script: uvicorn as the registry and settings say."""
    run_service("audit")
