"""The test kit every service's tests share: a migrated schema, tokens, the app in process.

    url = await migrated_database(postgres, "order")         # its alembic head, its schema
    mint = TokenMint(SigningKey.generate())                   # JWTs a service will accept
    headers = service_auth(secret, caller="payment", audience="user")   # for /internal/*
    async with app_client(create_app(settings)) as (app, client): ...
    async with consuming_app_client(app, bootstrap=b) as (app, client, producer): ...
    class RatesService(InProcessService[Settings]): ...       # app + client + mint handle

The pytest plugin offers `signing_key` and `token_mint` fixtures built on these.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

import httpx
from aiokafka import AIOKafkaProducer
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import SecretStr

from paygate_common.auth import JWKSCache, SigningKey, issue_access_token, issue_service_token
from paygate_common.migrations import upgrade_head
from paygate_common.services import spec_for
from paygate_common.settings import ServiceSettings
from paygate_devstack.services import repo_root


async def migrated_database(postgres: Any, service: str, *, database_url: str | None = None) -> str:
    """A new database (or `database_url`) with `service`'s migrations applied to its schema."""
    spec = spec_for(service)
    url: str = database_url or await postgres.acreate_database()
    ini = repo_root() / spec.folder / "alembic.ini"
    await asyncio.to_thread(upgrade_head, ini, database_url=url, db_schema=spec.schema)
    return url


class TokenMint:
    """Issues access tokens the way user-service does, for a key the app under test trusts."""

    def __init__(
        self, signing_key: SigningKey, *, issuer: str = "paygate", audience: str = "paygate-api"
    ) -> None:
        self.signing_key = signing_key
        self.issuer = issuer
        self.audience = audience

    def token(
        self,
        user_id: uuid.UUID | None = None,
        role: str = "customer",
        *,
        email: str | None = None,
        ttl_seconds: int = 600,
    ) -> str:
        token, _ = issue_access_token(
            self.signing_key,
            user_id=user_id or uuid.uuid4(),
            role=role,  # type: ignore[arg-type]
            email=email,
            issuer=self.issuer,
            audience=self.audience,
            ttl_seconds=ttl_seconds,
        )
        return token

    def auth(self, user_id: uuid.UUID | None = None, role: str = "customer") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user_id, role)}"}

    def trust(self, app: FastAPI) -> None:
        """Make `app` verify tokens against this mint's key (no JWKS fetch)."""
        app.state.jwks = JWKSCache.from_signing_keys([self.signing_key])


S = TypeVar("S", bound=ServiceSettings)


@dataclass
class InProcessService(Generic[S]):
    """A service's app running in process (lifespan up), a client to it, the mint it trusts.

    A service's conftest subclasses it (`class AuditService(InProcessService[Settings])`) and
    adds what its tests need (a producer, a clock, SQL helpers).
    """

    app: FastAPI
    http: httpx.AsyncClient
    mint: TokenMint

    @property
    def settings(self) -> S:
        return cast(S, self.app.state.settings)


@functools.cache
def _caller_settings(caller: str) -> type[ServiceSettings]:
    class CallerSettings(ServiceSettings):
        pass

    CallerSettings.service_name = spec_for(caller).service_name
    return CallerSettings


def service_auth(
    secret: SecretStr | str, *, caller: str, audience: str, ttl_seconds: int | None = None
) -> dict[str, str]:
    """The `Authorization` header service `caller` sends to `audience`'s `/internal/*` (both
    registry names), signed with the shared service-token secret."""
    secret = secret if isinstance(secret, SecretStr) else SecretStr(secret)
    settings = _caller_settings(caller)(service_token_secret=secret)
    token = issue_service_token(settings, audience_service=audience, ttl_seconds=ttl_seconds)
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def app_client(
    app: FastAPI, *, mint: TokenMint | None = None, startup_timeout: float = 60
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app with its whole lifespan running, and an HTTP client talking to it in process."""
    async with LifespanManager(app, startup_timeout=startup_timeout, shutdown_timeout=30):
        if mint is not None:
            mint.trust(app)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service.test") as client:
            yield app, client


@asynccontextmanager
async def consuming_app_client(
    app: FastAPI, *, bootstrap: str, mint: TokenMint | None = None, within: float = 30
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, AIOKafkaProducer]]:
    """`app_client` once every consumer of the app has joined its group (what is published from
    then on is seen), and a producer to the same broker to publish what the test feeds it."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        async with app_client(app, mint=mint) as (running, http):
            for consumer in running.state.eventing.consumers:
                await asyncio.wait_for(consumer.started.wait(), within)
            yield running, http, producer
    finally:
        await producer.stop()
