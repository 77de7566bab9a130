"""Fixtures: order-service in process (ASGITransport + lifespan) on real PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from order_service.main import create_app
from order_service.settings import Settings
from paygate_common.auth import SigningKey
from paygate_common.events import EventEnvelope, PaymentStatus
from paygate_common.events.topics import PAYMENT_EVENT
from paygate_common.internal.users import PAYMENT_CONTEXT_PATH, ChargeableMethod, PaymentContextRead
from paygate_devstack.asgi import serve_asgi
from paygate_devstack.events_testing import payment_envelope
from paygate_devstack.testkit import (
    InProcessService,
    TokenMint,
    consuming_app_client,
    migrated_database,
)


class UserServiceStandIn:
    """Stands in for user-service's `/internal/users/{id}/payment-context` (saved methods only).

    Its answers are built from the typed models user-service serves; the first saved method is
    the default. `calls` counts the requests, `down` makes it answer 503 (a broken dependency).
    """

    def __init__(self) -> None:
        self.methods: dict[uuid.UUID, list[ChargeableMethod]] = {}
        self.customers: dict[uuid.UUID, str] = {}
        self.calls = 0
        self.down = False
        self.app = FastAPI()

        @self.app.get(PAYMENT_CONTEXT_PATH)
        async def payment_context(
            user_id: uuid.UUID, request: Request, payment_method_id: uuid.UUID | None = None
        ) -> JSONResponse:
            self.calls += 1
            if not request.headers.get("authorization", "").startswith("Bearer "):
                return JSONResponse({"code": "service_token_invalid"}, status_code=401)
            if self.down:
                return JSONResponse({"code": "unavailable"}, status_code=503)
            owned = self.methods.get(user_id, [])
            if payment_method_id is None:
                method = owned[0] if owned else None
            else:
                method = next((m for m in owned if m.id == payment_method_id), None)
                if method is None:
                    return JSONResponse({"code": "payment_method_not_found"}, status_code=404)
            context = PaymentContextRead(
                user_id=user_id,
                email=f"{user_id.hex[:8]}@example.com",
                full_name="Buyer",
                provider_customer_id=self.customers.get(user_id),
                payment_method=method,
            )
            return JSONResponse(context.model_dump(mode="json"))

    def save_method(self, user_id: uuid.UUID) -> uuid.UUID:
        method = ChargeableMethod(
            id=uuid.uuid4(),
            provider="stripe",
            token=f"pm_{uuid.uuid4().hex[:24]}",
            brand="visa",
            last4="4242",
            exp_month=12,
            exp_year=2034,
        )
        self.methods.setdefault(user_id, []).append(method)
        self.customers.setdefault(user_id, f"cus_{user_id.hex[:14]}")
        return method.id

    def method(self, method_id: uuid.UUID) -> ChargeableMethod:
        return next(m for ms in self.methods.values() for m in ms if m.id == method_id)


@dataclass
class OrderService(InProcessService[Settings]):
    """The running app, an HTTP client to it, and helpers to act as users and payment-service."""

    producer: AIOKafkaProducer
    bootstrap: str
    users: UserServiceStandIn

    def token(self, user_id: uuid.UUID, role: str = "customer") -> str:
        return self.mint.token(user_id, role)

    def auth(self, user_id: uuid.UUID, role: str = "customer") -> dict[str, str]:
        return self.mint.auth(user_id, role)

    async def place(
        self, user_id: uuid.UUID, amount: int = 1999, key: str | None = None, **extra: Any
    ) -> httpx.Response:
        headers = self.auth(user_id)
        if key is not None:
            headers["Idempotency-Key"] = key
        return await self.http.post(
            "/orders", json={"amount": amount, "currency": "usd", **extra}, headers=headers
        )

    async def pay(
        self,
        order: dict[str, Any],
        status: PaymentStatus,
        *,
        payment_id: uuid.UUID | None = None,
        envelope: EventEnvelope | None = None,
        **fields: Any,
    ) -> EventEnvelope:
        """Publish a `payment.<status>` event as payment-service would (keyed by order id)."""
        if envelope is None:
            envelope = payment_envelope(
                payment_id=payment_id or uuid.uuid4(),
                order_id=uuid.UUID(order["id"]),
                user_id=uuid.UUID(order["user_id"]),
                status=status,
                amount=order["amount"],
                currency=order["currency"],
                **fields,
            )
        await self.producer.send_and_wait(
            PAYMENT_EVENT, envelope.to_bytes(), key=envelope.aggregate_id.encode()
        )
        return envelope

    async def sql(self, query: str, **params: Any) -> Any:
        from sqlalchemy import text

        async with self.app.state.sessionmaker() as session:
            return (await session.execute(text(query), params)).all()

    async def applied(self, event: EventEnvelope, timeout: float = 45) -> None:
        """Wait until the consumer recorded the event in its inbox (applied or ignored)."""
        await eventually(
            lambda: self._in_inbox(event.event_id), timeout=timeout, what=f"{event.event_type}"
        )

    async def _in_inbox(self, event_id: uuid.UUID) -> bool:
        rows = await self.sql(
            "SELECT 1 FROM inbox WHERE consumer = 'order-service' AND event_id = :id", id=event_id
        )
        return bool(rows)

    async def order(self, order_id: str, user_id: uuid.UUID) -> dict[str, Any]:
        r = await self.http.get(f"/orders/{order_id}", headers=self.auth(user_id))
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    async def wait_status(
        self, order: dict[str, Any], wanted: str, timeout: float = 15
    ) -> dict[str, Any]:
        user_id = uuid.UUID(order["user_id"])
        last: dict[str, Any] = {}

        async def check() -> bool:
            nonlocal last
            last = await self.order(order["id"], user_id)
            return last["status"] == wanted

        await eventually(check, timeout=timeout, what=f"order {order['id']} {wanted}")
        return last


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 15, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@asynccontextmanager
async def running_order_service(
    postgres: Any, kafka_broker: Any, signing_key: SigningKey, **overrides: Any
) -> AsyncIterator[OrderService]:
    database_url = await migrated_database(postgres, "order")
    users = UserServiceStandIn()
    users_cm = serve_asgi(users.app)
    users_url = await users_cm.__aenter__()
    # Limits need transaction-service; tests that start one turn them on (test_limits.py).
    overrides.setdefault("limits_enabled", False)
    settings = Settings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka_broker.bootstrap,
        environment="test",
        log_json=False,
        service_urls={"user": users_url},
        **overrides,
    )
    mint = TokenMint(signing_key, issuer=settings.jwt_issuer, audience=settings.jwt_audience)
    try:
        async with consuming_app_client(
            create_app(settings), bootstrap=kafka_broker.bootstrap, mint=mint
        ) as (app, http, producer):
            yield OrderService(app, http, mint, producer, kafka_broker.bootstrap, users)
    finally:
        await users_cm.__aexit__(None, None, None)


async def topic_messages(
    bootstrap: str, topic: str, *, key: str, wanted: int = 1, timeout: float = 15
) -> list[EventEnvelope]:
    """Every message with `key` on `topic` (read from the beginning, no consumer group)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: list[EventEnvelope] = []
    try:
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])
        ]
        if not partitions:
            await consumer.force_metadata_update()
            partitions = [
                TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])
            ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    if record.key == key.encode():
                        found.append(EventEnvelope.from_bytes(record.value))
            if len(found) >= wanted and not batch:
                break
    finally:
        await consumer.stop()
    return found


# Test modules cannot import this file (importlib mode), so the helpers travel as fixtures.


@pytest.fixture(scope="session")
def start_order_service(
    postgres: Any, kafka_broker: Any, signing_key: SigningKey
) -> Callable[..., Any]:
    """`async with start_order_service(**settings_overrides) as svc:` on a fresh database."""

    def start(**overrides: Any) -> Any:
        return running_order_service(postgres, kafka_broker, signing_key, **overrides)

    return start


@pytest.fixture(scope="session")
def read_topic() -> Callable[..., Awaitable[list[EventEnvelope]]]:
    return topic_messages


@pytest.fixture(scope="session")
def wait_until() -> Callable[..., Awaitable[None]]:
    return eventually
