"""audit-service app: create_app() wires the admin API, the all-topics consumer and the workers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from audit_service.api.audit import router as audit_router
from audit_service.events.handlers import audit_consumer
from audit_service.settings import Settings
from audit_service.store.role import act_as_role
from audit_service.workers.checkpoints import CheckpointSigner
from audit_service.workers.retention import retention_worker
from paygate_common.app import create_service_app
from paygate_common.eventing import ConsumerSpec
from paygate_common.serve import run_service

DESCRIPTION = """The audit trail of the whole suite. Every event on every topic (orders, payments,
refunds, users, configuration, `audit.event`) becomes one record, masked before it is stored
(no card number, secret, token or full email), linked into a SHA-256 hash chain and written to an
insert-only table. Signed checkpoints expose a removed tail; `GET /admin/audit/verify` walks the
chain. Admin only."""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Before anything touches the database: act as the insert-only writer role."""
    settings: Settings = app.state.settings
    act_as_role(app.state.engine, settings.db_role)
    yield


def consumers(app: FastAPI) -> list[ConsumerSpec]:
    settings: Settings = app.state.settings
    if not settings.consumer_enabled:
        return []
    return [
        audit_consumer(
            max_attempts=settings.consumer_max_attempts,
            batch_size=settings.consumer_batch_size,
            # Kafka client overrides (a test's own group id and short session timeout).
            consumer_options=getattr(app.state, "consumer_options", None),
        )
    ]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    return create_service_app(
        settings,
        title="paygate audit-service",
        description=DESCRIPTION,
        routers=[audit_router],
        lifespan=lifespan,
        # The service publishes nothing of its own: no outbox relay. Kafka is started even
        # when the consumer is switched off (`consumer_enabled=False`), as before.
        eventing=True,
        relay=False,
        consumers=consumers,
        workers=lambda app: [
            CheckpointSigner(app.state.sessionmaker, settings),
            retention_worker(app.state.sessionmaker, settings),
        ],
        use_redis=False,
        openapi_tags=[{"name": "audit", "description": "The tamper-evident audit trail (admin)"}],
    )


def run() -> None:
    """The `audit-service` console script: uvicorn as the registry and settings say."""
    run_service("audit")
