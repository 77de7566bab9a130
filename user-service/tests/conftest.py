"""Fixtures for user-service: a fresh migrated database per module, the in-process app, clients."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import SecretStr

from paygate_devstack.testkit import migrated_database, service_auth
from user_service.main import create_app
from user_service.settings import Settings

ADMIN_EMAIL = "Root@Admins.Example.COM"
ADMIN_PASSWORD = "bootstrap-admin-Secret-42"
STRONG_PASSWORD = "kettle-Orbit-7-quietly"


@pytest.fixture(scope="module")
async def database_url(postgres: Any) -> str:
    return await migrated_database(postgres, "user")


@pytest.fixture(scope="module")
def user_settings(
    database_url: str,
    redis_server: Any,
    kafka_broker: Any,
    localstripe: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        db_pool_size=4,
        redis_url=redis_server.url,
        kafka_bootstrap_servers=kafka_broker.bootstrap,
        stripe_api_base=localstripe.api_base,
        stripe_api_key=SecretStr(localstripe.api_key),
        stripe_max_network_retries=0,
        paygate_state_dir=str(tmp_path_factory.mktemp("user-service-state")),
        service_token_secret=SecretStr(secrets.token_urlsafe(48)),
        bootstrap_admin_email=ADMIN_EMAIL,
        bootstrap_admin_password=SecretStr(ADMIN_PASSWORD),
        log_json=False,
    )


@pytest.fixture(scope="module")
async def app(user_settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(user_settings)
    async with LifespanManager(application, startup_timeout=60):
        yield application


def client_for(app: FastAPI, ip: str | None = None) -> httpx.AsyncClient:
    # A distinct client address per client keeps one test's failed sign-ins out of another's
    # per-IP throttle counter.
    ip = ip or f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(ip, 40000)),
        base_url="http://user-service",
    )


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as c:
        yield c


@pytest.fixture
def make_client(app: FastAPI) -> Callable[..., httpx.AsyncClient]:
    """`make_client(ip=None)`: a client whose requests come from `ip` (random when None)."""
    return lambda ip=None: client_for(app, ip)


@dataclass
class Account:
    id: uuid.UUID
    email: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def unique_email(prefix: str = "ann") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:10]}@example.com"


@pytest.fixture
def new_account(client: httpx.AsyncClient) -> Callable[..., Awaitable[Account]]:
    async def create(email: str | None = None, password: str = STRONG_PASSWORD) -> Account:
        email = email or unique_email()
        signup = await client.post(
            "/auth/signup", json={"email": email, "password": password, "full_name": "Ann Lee"}
        )
        assert signup.status_code == 201, signup.text
        signin = await client.post("/auth/signin", json={"email": email, "password": password})
        assert signin.status_code == 200, signin.text
        return Account(
            id=uuid.UUID(signup.json()["id"]),
            email=signup.json()["email"],
            password=password,
            token=signin.json()["access_token"],
        )

    return create


@pytest.fixture
def service_headers(user_settings: Settings) -> dict[str, str]:
    """payment-service calling `/internal/*`."""
    return service_auth(user_settings.service_token_secret, caller="payment", audience="user")


@pytest.fixture
def gateway_headers(user_settings: Settings) -> dict[str, str]:
    """The gateway, the one caller allowed to resolve API keys."""
    return service_auth(user_settings.service_token_secret, caller="gateway", audience="user")


AuditReader = Callable[..., Awaitable[list[dict[str, Any]]]]


@pytest.fixture
def audit_events(app: FastAPI) -> AuditReader:
    """`await audit_events(action, entity_id=None)`: committed `audit.event` payloads in the outbox."""
    from sqlalchemy import select

    from user_service.store.tables import outbox

    async def read(action: str, entity_id: object = None) -> list[dict[str, Any]]:
        async with app.state.sessionmaker() as session:
            rows = await session.execute(
                select(outbox.c.payload)
                .where(outbox.c.event_type == "audit.event")
                .order_by(outbox.c.id)
            )
            events = [dict(r[0]["payload"]) for r in rows]
        return [
            e
            for e in events
            if e["action"] == action and (entity_id is None or e["entity_id"] == str(entity_id))
        ]

    return read
