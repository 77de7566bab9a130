"""Fixtures: notification-service in-process against real PostgreSQL, Redis, Kafka and SMTP.

The database, the tokens and the app with its lifespan come from `paygate_devstack.testkit`.
user-service is replaced by `UserServiceStandIn`, a small ASGI app on a real port that serves
what notification-service needs from it (the internal contact endpoint) and counts contact
lookups, so the Redis cache can be observed from the outside.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from email.message import EmailMessage
from typing import Any, ClassVar

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from notification_service.main import create_app
from notification_service.settings import Settings
from paygate_common.auth import verify_service_token
from paygate_common.db import unit_of_work
from paygate_common.errors import install_error_handlers
from paygate_common.events import PAYMENT_EVENT, EventEnvelope, PaymentEvent, new_event
from paygate_common.internal.users import ContactRead
from paygate_common.settings import ServiceSettings
from paygate_devstack.asgi import serve_asgi as serve
from paygate_devstack.testkit import TokenMint, app_client, migrated_database

SERVICE_TOKEN_SECRET = secrets.token_urlsafe(48)
MAX_ATTEMPTS = 3  # small, with tiny backoffs, so dead-lettering takes well under a second
WEBHOOK_SCHEDULE = "0s,0.3s,0.3s"  # three attempts, a moment apart
WEBHOOK_TIMEOUT = 1.5  # a receiver that never answers costs this per attempt


class _UserServiceIdentity(ServiceSettings):
    service_name: ClassVar[str] = "user-service"


class UserServiceStandIn:
    """Stands in for user-service's `/internal/users/{id}/contact` (service token checked)."""

    def __init__(self) -> None:
        self.contacts: dict[uuid.UUID, dict[str, Any]] = {}
        self.contact_calls: Counter[uuid.UUID] = Counter()
        self.callers: list[str] = []
        # Users whose lookup answers 503 (user-service having an outage for them).
        self.unavailable: set[uuid.UUID] = set()
        app = FastAPI()
        app.state.settings = _UserServiceIdentity(service_token_secret=SERVICE_TOKEN_SECRET)
        install_error_handlers(app)

        @app.get("/internal/users/{user_id}/contact")
        async def contact(user_id: uuid.UUID, request: Request) -> JSONResponse:
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            self.callers.append(verify_service_token(token, app.state.settings))
            self.contact_calls[user_id] += 1
            if user_id in self.unavailable:
                return JSONResponse(
                    {"code": "service_unavailable", "status": 503},
                    status_code=503,
                    media_type="application/problem+json",
                )
            found = self.contacts.get(user_id)
            if found is None:
                return JSONResponse(
                    {"code": "user_not_found", "status": 404},
                    status_code=404,
                    media_type="application/problem+json",
                )
            # Built with user-service's own response model: the stand-in cannot drift from it.
            answer = ContactRead.model_validate({"user_id": user_id, **found})
            return JSONResponse(answer.model_dump(mode="json"))

        self.app = app

    def add_user(
        self, *, full_name: str = "Ada Lovelace", phone: str | None = None
    ) -> tuple[uuid.UUID, str]:
        user_id = uuid.uuid4()
        email = f"customer-{user_id.hex[:12]}@example.com"
        self.contacts[user_id] = {"email": email, "full_name": full_name}
        if phone is not None:
            self.contacts[user_id]["phone"] = phone
        return user_id, email


@pytest.fixture(scope="session")
async def user_service() -> AsyncIterator[tuple[UserServiceStandIn, str]]:
    stand_in = UserServiceStandIn()
    async with serve(stand_in.app) as url:
        yield stand_in, url


@pytest.fixture(scope="session")
async def settings(
    postgres: Any,
    redis_server: Any,
    kafka_broker: Any,
    smtp_sink: Any,
    sms_sink: Any,
    user_service: tuple[UserServiceStandIn, str],
) -> Settings:
    _, user_url = user_service
    settings = Settings(
        environment="test",
        database_url=await migrated_database(postgres, "notification"),
        redis_url=redis_server.url,
        kafka_bootstrap_servers=kafka_broker.bootstrap,
        smtp_host=smtp_sink.host,
        smtp_port=smtp_sink.port,
        smtp_from_address="paygate <no-reply@paygate.test>",
        sms_api_base=sms_sink.api_base,
        sms_account_sid=sms_sink.account_sid,
        sms_auth_token=sms_sink.auth_token,
        service_token_secret=SERVICE_TOKEN_SECRET,
        service_urls={"user": user_url},
        max_attempts=MAX_ATTEMPTS,
        backoff_base_seconds=0.05,
        backoff_max_seconds=0.2,
        sender_poll_interval_seconds=0.1,
        smtp_timeout_seconds=2,
        contact_cache_ttl_seconds=300,
        contact_retry_seconds=0.2,
        db_pool_size=5,
        # Merchant webhooks on a test schedule of (fractions of) seconds.
        webhook_retry_schedule=WEBHOOK_SCHEDULE,
        webhook_timeout_seconds=WEBHOOK_TIMEOUT,
        webhook_lease_seconds=10,
        webhook_poll_interval_seconds=0.1,
        webhook_concurrency=8,
        webhook_per_endpoint_concurrency=2,
    )
    return settings


@pytest.fixture(scope="module")
async def service(
    settings: Settings, token_mint: TokenMint
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """Module-scoped: its consumer group is `notification-service`, and a lingering member would
    take partitions from a notification-service that a later test (e2e) starts."""
    async with app_client(create_app(settings), mint=token_mint) as (app, client):
        # Wait until the consumer joined its group: events published from now on are seen.
        for runner in app.state.eventing.consumers:
            await asyncio.wait_for(runner.started.wait(), 30)
        yield app, client


@pytest.fixture
def app(service: tuple[FastAPI, httpx.AsyncClient]) -> FastAPI:
    return service[0]


@pytest.fixture
def client(service: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return service[1]


@pytest.fixture
async def live_templates(app: FastAPI) -> AsyncIterator[None]:
    """For a test that saves templates: the live ones are shared by every test on this
    database, so they are removed afterwards and the built-in ones apply again."""
    yield
    async with unit_of_work(app.state.sessionmaker) as session:
        await session.execute(text("DELETE FROM message_templates"))


def emails_to(smtp_sink: Any, address: str) -> list[EmailMessage]:
    """The messages in the SMTP sink addressed to `address`."""
    return [m for m in smtp_sink.messages() if address in str(m["To"])]


@pytest.fixture
def mailbox(smtp_sink: Any) -> Callable[[str], list[EmailMessage]]:
    """`mailbox(address)`: the messages in the SMTP sink addressed to it."""
    return lambda address: emails_to(smtp_sink, address)


@pytest.fixture(scope="session")
async def producer(kafka_broker: Any) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all")
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture
def stand_in(user_service: tuple[UserServiceStandIn, str]) -> UserServiceStandIn:
    return user_service[0]


@pytest.fixture
def auth_headers(token_mint: TokenMint) -> Any:
    """`auth_headers(user_id, role="customer")` → an Authorization header with a real RS256 token."""
    return token_mint.auth


def payment_event(
    user_id: uuid.UUID,
    status: str = "succeeded",
    *,
    amount: int = 1999,
    currency: str = "usd",
    failure_message: str | None = None,
    next_action: dict[str, Any] | None = None,
) -> EventEnvelope:
    """A `payment.<status>` envelope as payment-service publishes it (keyed by the order id)."""
    order_id = uuid.uuid4()
    payload = PaymentEvent(
        payment_id=uuid.uuid4(),
        order_id=order_id,
        user_id=user_id,
        status=status,  # type: ignore[arg-type]
        amount=amount,
        currency=currency,
        provider="stripe",
        provider_reference=f"pi_{uuid.uuid4().hex[:16]}",
        failure_code="card_declined" if status == "failed" else None,
        failure_message=failure_message,
        next_action=next_action,
    )
    return new_event(payload, producer="payment-service", aggregate_id=str(order_id))


class PaymentEvents:
    """Builds `payment.<status>` envelopes and publishes them to `payment.event`."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self.build = payment_event

    async def publish(self, envelope: EventEnvelope) -> None:
        await self.producer.send_and_wait(
            PAYMENT_EVENT, value=envelope.to_bytes(), key=envelope.aggregate_id.encode()
        )


@pytest.fixture
def payments(producer: AIOKafkaProducer) -> PaymentEvents:
    return PaymentEvents(producer)


class WebhookReceiver:
    """A merchant's webhook endpoint on a real port: records every POST per path and answers
    from a per-path script (`script(path, 500, 500, 200)`; `hang` never answers)."""

    HANG = -1

    def __init__(self) -> None:
        self.received: dict[str, list[tuple[dict[str, str], bytes]]] = {}
        self.scripts: dict[str, list[int]] = {}
        self.default_status: dict[str, int] = {}
        self.retry_after: dict[str, str] = {}
        self.url = ""
        app = FastAPI()

        @app.post("/hooks/{name}")
        async def hook(name: str, request: Request) -> Any:
            body = await request.body()
            self.received.setdefault(name, []).append((dict(request.headers), body))
            script = self.scripts.get(name)
            code = script.pop(0) if script else self.default_status.get(name, 200)
            if code == self.HANG:
                await asyncio.sleep(20)  # longer than the client waits
            headers = {"Retry-After": self.retry_after.get(name, "0")} if code >= 400 else {}
            return JSONResponse({"answer": code}, status_code=code, headers=headers)

        self.app = app

    def endpoint(self, *codes: int, default: int = 200, retry_after: str = "0") -> tuple[str, str]:
        """A fresh path answering `codes` in turn, then `default` (errors with `Retry-After`)."""
        name = uuid.uuid4().hex[:12]
        self.scripts[name] = list(codes)
        self.default_status[name] = default
        self.retry_after[name] = retry_after
        return name, f"{self.url}/hooks/{name}"

    def requests(self, name: str) -> list[tuple[dict[str, str], bytes]]:
        return self.received.get(name, [])


@pytest.fixture(scope="session")
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    async with serve(receiver.app) as url:
        receiver.url = url
        yield receiver
