"""Fixtures: transaction-service in process (ASGITransport + lifespan) on real PostgreSQL, Redis, Kafka."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from paygate_common.auth import SigningKey
from paygate_common.db import create_engine, create_sessionmaker
from paygate_common.events import EventEnvelope
from paygate_common.events.topics import PAYMENT_EVENT
from paygate_devstack import TOPICS
from paygate_devstack.components import Kafka
from paygate_devstack.consumer_testing import BatchFeeder
from paygate_devstack.events_testing import payment_envelope, wait_for
from paygate_devstack.process import free_port
from paygate_devstack.testkit import (
    InProcessService,
    TokenMint,
    consuming_app_client,
    migrated_database,
    service_auth,
)
from transaction_service.events.handlers import CONSUMER_NAME, ledger_consumer
from transaction_service.main import create_app, run_as_role
from transaction_service.settings import LEDGER_ROLE, Settings


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
    url = await migrated_database(postgres, "transaction")
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


@pytest.fixture(scope="session")
def make_payment_event() -> Callable[..., EventEnvelope]:
    return payment_envelope


@dataclass
class TransactionService(InProcessService[Settings]):
    """The running app, an HTTP client to it, and helpers to act as users and payment-service."""

    producer: AIOKafkaProducer

    def auth(self, user_id: uuid.UUID, role: str = "customer") -> dict[str, str]:
        return self.mint.auth(user_id, role)

    def service_auth(self, caller: str = "order-service") -> dict[str, str]:
        return service_auth(
            self.settings.service_token_secret,
            caller=caller,
            audience="transaction",
        )

    async def publish(self, envelope: EventEnvelope, topic: str = PAYMENT_EVENT) -> EventEnvelope:
        await self.producer.send_and_wait(
            topic, envelope.to_bytes(), key=envelope.aggregate_id.encode()
        )
        return envelope

    async def publish_all(self, envelopes: list[EventEnvelope]) -> None:
        """Publish every envelope, then wait until the ledger consumed each."""
        for envelope in envelopes:
            await self.publish(envelope)
        for envelope in envelopes:
            await self.applied(envelope)

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
    database_url = await migrated_database(postgres, "transaction")
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
    mint = TokenMint(signing_key, issuer=settings.jwt_issuer, audience=settings.jwt_audience)
    async with consuming_app_client(
        create_app(settings), bootstrap=kafka_broker.bootstrap, mint=mint
    ) as (app, http, producer):
        yield TransactionService(app, http, mint, producer)


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
