"""Fixtures: payment-service against real PostgreSQL, Kafka, Redis and localstripe.

user-service has no app yet, so `UserServiceStandIn` — a small ASGI app on a real port — serves
the two things payment-service needs from it (`/internal/users/{id}/payment-context`, checked
against a real service token, and the JWKS) and can be stopped to play "user-service down".
The payment-service itself runs under uvicorn on a real port, because localstripe POSTs its
webhooks there.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parent))

from payment_tests_support import (
    ALEMBIC_INI,
    OLD_WEBHOOK_SECRET,
    SERVICE_TOKEN_SECRET,
    WEBHOOK_SECRET,
    LiveServer,
    Orders,
    PaymentEvents,
    Stripe,
    UserServiceStandIn,
    free_port,
    paypal_access_token,
)

from paygate_common.auth import SigningKey
from paygate_common.db import create_engine, create_sessionmaker
from paygate_common.migrations import upgrade_head
from paygate_devstack import paypal_standin, sslcommerz_standin
from paygate_devstack.standins import RunningStandIn, running_paypal, running_sslcommerz
from payment_service.main import create_app
from payment_service.settings import Settings


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="session")
async def user_service(signing_key: SigningKey) -> AsyncIterator[UserServiceStandIn]:
    standin = UserServiceStandIn(signing_key)
    await standin.server.start()
    yield standin
    await standin.server.stop()


@pytest.fixture(scope="session")
async def payments_database(postgres: Any) -> str:
    url = str(await postgres.acreate_database())
    await asyncio.to_thread(upgrade_head, ALEMBIC_INI, database_url=url, db_schema="payments")
    return url


@pytest.fixture(scope="session")
async def paypal(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningStandIn[Any]]:
    """The PayPal stand-in (devstack), served in the tests' event loop."""
    async with running_paypal(tmp_path_factory.mktemp("paypal")) as running:
        yield running


@pytest.fixture(scope="session")
async def sslcommerz(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[RunningStandIn[Any]]:
    """The SSLCommerz stand-in (devstack), served in the tests' event loop."""
    async with running_sslcommerz(tmp_path_factory.mktemp("sslcommerz")) as running:
        yield running


@pytest.fixture(scope="session")
def settings_factory(
    payments_database: str,
    redis_server: Any,
    kafka_broker: Any,
    localstripe: Any,
    user_service: UserServiceStandIn,
    paypal: RunningStandIn[Any],
    sslcommerz: RunningStandIn[Any],
) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "environment": "test",
            "log_json": False,
            "database_url": payments_database,
            "db_pool_size": 5,
            "redis_url": redis_server.url,
            "kafka_bootstrap_servers": kafka_broker.bootstrap,
            "stripe_api_base": localstripe.api_base,
            "stripe_api_key": localstripe.api_key,
            "stripe_webhook_secret": WEBHOOK_SECRET,
            "stripe_webhook_previous_secrets": [OLD_WEBHOOK_SECRET],
            "service_token_secret": SERVICE_TOKEN_SECRET,
            "service_urls": {"user": user_service.url},
            "jwks_url": f"{user_service.url}/.well-known/jwks.json",
            "executor_poll_seconds": 0.05,
            "retry_base_seconds": 0.2,
            "retry_max_seconds": 0.5,
            "reconcile_interval_seconds": 0.5,
            "stripe_timeout_seconds": 5.0,
            "paypal_api_base": paypal.url,
            "paypal_client_id": paypal_standin.CLIENT_ID,
            "paypal_client_secret": paypal_standin.CLIENT_SECRET,
            "paypal_webhook_cert_hosts": [paypal.host],
            "paypal_webhook_require_https": False,
            "sslcommerz_api_base": sslcommerz.url,
            "sslcommerz_store_id": sslcommerz_standin.STORE_ID,
            "sslcommerz_store_password": sslcommerz_standin.STORE_PASSWORD,
            # limits need transaction-service: the e2e suite runs them (tests/e2e/test_ledger.py)
            "limits_enabled": False,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture(scope="session")
def stripe_api(localstripe: Any) -> Stripe:
    return Stripe(localstripe)


@pytest.fixture(scope="session")
async def kafka_producer(kafka_broker: Any) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all")
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture(scope="session")
def orders(kafka_producer: AIOKafkaProducer) -> Orders:
    return Orders(kafka_producer)


@pytest.fixture(scope="session")
async def payment_events(kafka_broker: Any) -> AsyncIterator[PaymentEvents]:
    events = PaymentEvents(kafka_broker.bootstrap)
    await events.start()
    yield events
    await events.stop()


@pytest.fixture(scope="session")
def db_sessionmaker(settings_factory: Callable[..., Settings]) -> Any:
    return create_sessionmaker(create_engine(settings_factory(), pool_size=2))


async def register_paypal_webhook(paypal: RunningStandIn[Any], url: str) -> str:
    """The PayPal webhook id for `url`, created through PayPal's API (at the stand-in)."""
    async with httpx.AsyncClient(base_url=paypal.url, timeout=10) as http:
        token = await paypal_access_token(http)
        created = await http.post(
            "/v1/notifications/webhooks",
            json={"url": url, "event_types": [{"name": "*"}]},
            headers={"Authorization": f"Bearer {token}"},
        )
        return str(created.json()["id"])


@pytest.fixture(scope="session")
async def payment_service(
    settings_factory: Callable[..., Settings], localstripe: Any, paypal: RunningStandIn[Any]
) -> AsyncIterator[LiveServer]:
    """The payment-service (stripe connector → localstripe; PayPal and SSLCommerz stand-ins)
    on a real port, its own public URL (return and IPN URLs), webhooks registered."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    webhook_id = await register_paypal_webhook(paypal, f"{url}/webhooks/paypal")
    app = create_app(settings_factory(public_url=url, paypal_webhook_id=webhook_id))
    server = LiveServer(app, port=port)
    await server.start()
    localstripe.register_webhook(
        f"{server.url}/webhooks/stripe", WEBHOOK_SECRET, webhook_id="payment-service-tests"
    )
    yield server
    await server.stop()


@pytest.fixture(scope="module")
async def own_database(postgres: Any) -> str:
    """A migrated database of its own for one test module (executor tests that count rows)."""
    url = str(await postgres.acreate_database())
    await asyncio.to_thread(upgrade_head, ALEMBIC_INI, database_url=url, db_schema="payments")
    return url
