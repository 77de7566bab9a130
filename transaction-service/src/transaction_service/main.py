"""transaction-service app: create_app() declares the API, the ledger consumer and the sweeper."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from paygate_common.app import create_service_app
from paygate_common.serve import run_service
from transaction_service.api.analytics import router as analytics_router
from transaction_service.api.ledger import router as ledger_router
from transaction_service.api.limits import router as limits_router
from transaction_service.api.transactions import router as transactions_router
from transaction_service.events.handlers import ledger_consumer
from transaction_service.settings import Settings
from transaction_service.workers.config_sync import load_config_from_admin
from transaction_service.workers.reservations import reservation_sweeper

DESCRIPTION = """A double-entry ledger the database enforces. Every `payment.event` becomes at
most one balanced journal entry (authorisation → pending, capture → posted with the fee, void
→ pending released, refund → merchant debited); `GET /transactions`, `GET /balance` and
`GET /transactions/summary` serve the caller's history from Redis; operators read
`GET /admin/ledger/trial-balance`. Other services reserve charges against the users' limits at
`POST /internal/limits/reservations` and admin-service reads `GET /internal/analytics`
(service token)."""


def run_as_role(engine: AsyncEngine, role: str) -> None:
    """Every new connection runs `SET ROLE role`: INSERT on the journal, no UPDATE or DELETE."""
    quoted = '"' + role.replace('"', '""') + '"'

    @event.listens_for(engine.sync_engine, "connect")
    def _set_role(dbapi_connection: Any, _: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"SET ROLE {quoted}")
        cursor.close()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Before anything opens a connection (the kit starts the consumer after this): the role;
    then the configuration admin-service holds now (kept as it was if admin-service is down)."""
    settings: Settings = app.state.settings
    if settings.db_role:
        run_as_role(app.state.engine, settings.db_role)
        await app.state.engine.dispose()  # no connection opened before runs with other rights
    await load_config_from_admin(settings, app.state.sessionmaker)
    yield


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    return create_service_app(
        settings,
        title="paygate transaction-service",
        description=DESCRIPTION,
        routers=[transactions_router, ledger_router, limits_router, analytics_router],
        lifespan=lifespan,
        consumers=lambda app: [ledger_consumer(settings)],
        workers=lambda app: [reservation_sweeper(app.state.sessionmaker, settings)],
        openapi_tags=[
            {"name": "transactions", "description": "History, balances and analytics"},
            {"name": "ledger", "description": "The operator's view of the books"},
            {"name": "internal", "description": "Service-to-service: limits and analytics"},
        ],
    )


def run() -> None:
    """The `transaction-service` console script: uvicorn as the registry and settings say."""
    run_service("transaction")
