"""admin-service app: the configuration store, the operator API and suite health."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from admin_service.api import config, operations
from admin_service.domain.health import SuiteHealth
from admin_service.pages import console, dashboard
from admin_service.pages.rendering import HERE, install_page_errors
from admin_service.pages.upstream import Upstream
from admin_service.settings import Settings
from admin_service.workers.health_sampler import HealthSampler
from paygate_common.app import create_service_app
from paygate_common.http import ServiceClient
from paygate_common.serve import run_service

DESCRIPTION = """Operations for the whole suite (admin only). Versioned, schema-validated
configuration (`fees`, `limits`, `payments.providers`): every change is a new version, published
on `config.changed` and audited; services load the current value at start-up and apply changes
without a restart. Users (via user-service), analytics (via transaction-service) and the health
of every service, consumer group, dead-letter topic and outbox."""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    health = SuiteHealth(
        settings,
        services=settings.health_services,
        lag_warning=settings.health_lag_warning,
        timeout=settings.health_timeout_seconds,
    )
    app.state.suite_health = health
    app.state.users = ServiceClient(settings, target="user", timeout=5.0)
    app.state.transactions = ServiceClient(settings, target="transaction", timeout=5.0)
    pages_client = httpx.AsyncClient(timeout=10.0)
    app.state.upstream = Upstream(pages_client)
    try:
        yield
    finally:
        await pages_client.aclose()
        await app.state.users.aclose()
        await app.state.transactions.aclose()
        await health.aclose()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = create_service_app(
        settings,
        title="paygate admin-service",
        description=DESCRIPTION,
        routers=[
            config.router,
            operations.router,
            config.internal,
            console.router,
            dashboard.router,
        ],
        lifespan=lifespan,
        use_redis=False,
        eventing=True,
        workers=lambda app: [
            HealthSampler(app.state.suite_health, settings.health_sample_interval_seconds)
        ],
        openapi_tags=[
            {"name": "configuration", "description": "Versioned configuration (admin)"},
            {"name": "operations", "description": "Users, analytics and suite health (admin)"},
            {"name": "internal", "description": "Service-to-service; needs a service token"},
        ],
    )
    # The pages' own assets (vendored: no CDN), under each surface so relative to its base.
    static = StaticFiles(directory=str(HERE / "static"))
    app.mount("/console/static", static, name="console-static")
    app.mount("/dashboard/static", static, name="dashboard-static")
    install_page_errors(app)
    return app


def run() -> None:
    """The `admin-service` console script: uvicorn as the registry and settings say."""
    run_service("admin")
