"""Fixtures: transaction-service in process (ASGITransport + lifespan) on real PostgreSQL, Redis, Kafka."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from paygate_common.auth import JWKSCache, SigningKey, issue_access_token, issue_service_token
from paygate_common.db import create_engine, create_sessionmaker
from paygate_common.events import EventEnvelope, PaymentEvent, PaymentStatus, new_event
from paygate_common.events.topics import PAYMENT_EVENT
from paygate_common.migrations import upgrade_head
from paygate_common.settings import ServiceSettings
from paygate_devstack import TOPICS
from paygate_devstack.components import Kafka
from paygate_devstack.consumer_testing import BatchFeeder
from paygate_devstack.events_testing import wait_for
from paygate_devstack.process import free_port
from transaction_service.events.handlers import CONSUMER_NAME, ledger_consumer
from transaction_service.main import create_app, run_as_role
from transaction_service.settings import LEDGER_ROLE, Settings

ALEMBIC_INI = Path(__file__).resolve().parents[1] / "alembic.ini"


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return SigningKey.generate()


async def migrated_database(postgres: Any) -> str:
    url: str = await postgres.acreate_database()
    await asyncio.to_thread(upgrade_head, ALEMBIC_INI, database_url=url, db_schema="transactions")
    return url


class Ledger:
    """The ledger's tables and consumer without Kafka: the consumer runner's batch path, in process.

    `apply(envelopes)` hands the envelopes to the real `ConsumerRunner._apply` as one batch
    (one transaction, one inbox insert, the service's batch handler; event by event with a
    savepoint each when something raises), on connections running as the service's role.
    `batched=False` leaves the batch handler out: every event goes through the per-event handler.
    """

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        owner_engine: AsyncEngine,
        *,
        batched: bool = True,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.owner_engine = owner_engine  # the migration's (super)user: for inspecting only
        self.sessionmaker: async_sessionmaker[AsyncSession] = create_sessionmaker(engine)
        self.feeder = BatchFeeder(
            ledger_consumer(settings),
            settings=settings,
            sessionmaker=self.sessionmaker,
            batched=batched,
            max_attempts=1,
        )
        self.runner = self.feeder.runner

    @property
    def fallbacks(self) -> int:
        """How many batches the runner had to apply event by event (something raised in one)."""
        return self.feeder.fallbacks

    async def apply(self, envelopes: list[EventEnvelope]) -> None:
        await self.feeder.apply(envelopes, PAYMENT_EVENT)

    async def sql(self, query: str, **params: Any) -> list[Any]:
        async with self.owner_engine.connect() as conn:
            return list((await conn.execute(text(query), params)).all())


@asynccontextmanager
async def ledger_on(
    postgres: Any, *, batched: bool = True, **overrides: Any
) -> AsyncIterator[Ledger]:
    url = await migrated_database(postgres)
    settings = Settings(database_url=url, environment="test", log_json=False, **overrides)
    engine = create_engine(settings)
    run_as_role(engine, LEDGER_ROLE)
    owner = create_engine(settings)
    try:
        yield Ledger(settings, engine, owner, batched=batched)
    finally:
        await engine.dispose()
        await owner.dispose()


@pytest.fixture(scope="session")
def start_ledger(postgres: Any) -> Callable[..., Any]:
    """`async with start_ledger(batched=..., **settings) as ledger:` on a fresh database."""

    def start(*, batched: bool = True, **overrides: Any) -> Any:
        return ledger_on(postgres, batched=batched, **overrides)

    return start


def payment_event(
    *,
    payment_id: uuid.UUID,
    user_id: uuid.UUID,
    status: PaymentStatus,
    amount: int,
    currency: str = "usd",
    provider: str = "stripe",
    order_id: uuid.UUID | None = None,
    **fields: Any,
) -> EventEnvelope:
    payload = PaymentEvent(
        payment_id=payment_id,
        order_id=order_id,
        user_id=user_id,
        status=status,
        amount=amount,
        currency=currency,
        provider=provider,
        **fields,
    )
    return new_event(payload, producer="payment-service", aggregate_id=str(order_id or payment_id))


@pytest.fixture(scope="session")
def make_payment_event() -> Callable[..., EventEnvelope]:
    return payment_event


@dataclass
class TransactionService:
    """The running app, an HTTP client to it, and helpers to act as users and payment-service."""

    app: FastAPI
    http: httpx.AsyncClient
    signing_key: SigningKey
    producer: AIOKafkaProducer

    @property
    def settings(self) -> Settings:
        settings: Settings = self.app.state.settings
        return settings

    def auth(self, user_id: uuid.UUID, role: str = "customer") -> dict[str, str]:
        token, _ = issue_access_token(
            self.signing_key,
            user_id=user_id,
            role=role,  # type: ignore[arg-type]
            email=None,
            issuer=self.settings.jwt_issuer,
            audience=self.settings.jwt_audience,
            ttl_seconds=600,
        )
        return {"Authorization": f"Bearer {token}"}

    def service_auth(self, caller: str = "order-service") -> dict[str, str]:
        class Caller(ServiceSettings):
            service_name: ClassVar[str] = caller

        token = issue_service_token(
            Caller(service_token_secret=self.settings.service_token_secret),
            audience_service="transaction",
        )
        return {"Authorization": f"Bearer {token}"}

    async def publish(self, envelope: EventEnvelope, topic: str = PAYMENT_EVENT) -> EventEnvelope:
        await self.producer.send_and_wait(
            topic, envelope.to_bytes(), key=envelope.aggregate_id.encode()
        )
        return envelope

    async def sql(self, query: str, **params: Any) -> list[Any]:
        """Run a statement in a transaction of its own (committed), as the service's role."""
        async with self.app.state.sessionmaker() as session, session.begin():
            return list((await session.execute(text(query), params)).all())

    async def applied(self, envelope: EventEnvelope, timeout: float = 15) -> None:
        async def seen() -> bool:
            rows = await self.sql(
                "SELECT 1 FROM inbox WHERE consumer = :c AND event_id = :id",
                c=CONSUMER_NAME,
                id=envelope.event_id,
            )
            return bool(rows)

        await wait_for(seen, timeout=timeout)

    def cache_count(self, result: str) -> float:
        from prometheus_client import REGISTRY

        value = REGISTRY.get_sample_value(
            "paygate_history_cache_total",
            {"service": self.settings.service_name, "result": result},
        )
        return value or 0.0


@asynccontextmanager
async def running_transaction_service(
    postgres: Any, redis_server: Any, kafka_broker: Any, signing_key: SigningKey, **overrides: Any
) -> AsyncIterator[TransactionService]:
    database_url = await migrated_database(postgres)
    # No admin-service unless a test gives one: a real one left on its registry port by
    # another test module would hand these tests its fee schedule at start-up.
    overrides.setdefault("service_urls", {"admin": f"http://127.0.0.1:{free_port()}"})
    settings = Settings(
        database_url=database_url,
        redis_url=redis_server.url,
        kafka_bootstrap_servers=kafka_broker.bootstrap,
        environment="test",
        log_json=False,
        **overrides,
    )
    app = create_app(settings)
    app.state.jwks = JWKSCache.from_signing_keys([signing_key])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    await producer.start()
    try:
        async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
            consumer = app.state.eventing.consumers[0]
            await asyncio.wait_for(consumer.started.wait(), 30)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://ledger") as http:
                yield TransactionService(app, http, signing_key, producer)
    finally:
        await producer.stop()


@pytest.fixture(scope="session")
def ledger_kafka(devstack_dir: Path) -> Iterator[Kafka]:
    """A broker of our own: the payment events these tests publish (new statuses, refunds)
    must not reach other services' consumers sharing the session's broker, and theirs not us."""
    broker = Kafka(free_port(), log_path=devstack_dir / "logs" / "kafka-ledger.log", topics=TOPICS)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def start_transaction_service(
    postgres: Any, redis_server: Any, ledger_kafka: Any, signing_key: SigningKey
) -> Callable[..., Any]:
    """`async with start_transaction_service(**settings) as svc:` on a fresh database."""

    def start(**overrides: Any) -> Any:
        return running_transaction_service(
            postgres, redis_server, ledger_kafka, signing_key, **overrides
        )

    return start
