"""Helpers for the end-to-end tests: the suite's processes, a customer client, topic readers."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer

from paygate_devstack.components import Kafka
from paygate_devstack.events_testing import wait_for
from paygate_devstack.pytest_plugin import PaygateStack, ServiceProcess

ADMIN_EMAIL = "ops@example.com"
ADMIN_PASSWORD = "an-admin-passphrase-42"
PASSWORD = "correct-horse-battery-staple"

# Tight retry settings so the failure scenarios finish in seconds, not minutes.
SUITE_ENV = {
    "USER_SERVICE_BOOTSTRAP_ADMIN_EMAIL": ADMIN_EMAIL,
    "USER_SERVICE_BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
    "GATEWAY_RATE_LIMIT_ANON": "100000/second",
    "GATEWAY_RATE_LIMIT_USER": "100000/second",
    "GATEWAY_RATE_LIMIT_AUTH": "100000/second",
    # Every e2e test signs in from 127.0.0.1 and several fail on purpose (wrong passwords,
    # disabled accounts): the per-IP sign-in throttle (user-service's own tests cover it) would
    # lock the whole suite out after 20.
    "USER_SERVICE_SIGNIN_MAX_FAILURES_PER_IP": "100000",
    "NOTIFICATION_SERVICE_MAX_ATTEMPTS": "3",
    "NOTIFICATION_SERVICE_BACKOFF_BASE_SECONDS": "0.2",
    "NOTIFICATION_SERVICE_BACKOFF_MAX_SECONDS": "0.5",
    "NOTIFICATION_SERVICE_SENDER_POLL_INTERVAL_SECONDS": "0.2",
    "PAYMENT_SERVICE_RECONCILE_AFTER_SECONDS": "10",
    "PAYMENT_SERVICE_STRIPE_TIMEOUT_SECONDS": "5",
    "PAYMENT_SERVICE_RECONCILE_INTERVAL_SECONDS": "1",
    "LOG_JSON": "true",
    # Only eur is limited tightly (test_ledger.py); other currencies keep the defaults.
    "TRANSACTION_SERVICE_LIMITS": '{"eur": {"daily": 10000}}',
}
# transaction-service before order-service: POST /orders reserves against its limits.
SERVICES = ("user", "transaction", "order", "payment", "notification", "gateway")


@dataclass
class Suite:
    """The services on the session's PostgreSQL, Stripe and SMTP, with a broker of their own."""

    stack: PaygateStack
    procs: dict[str, ServiceProcess]
    kafka: Kafka

    @property
    def api(self) -> str:
        return self.procs["gateway"].url + "/api/v1"


class Customer:
    """A signed-up user driving the public API the way a merchant's backend would."""

    def __init__(self, http: httpx.AsyncClient, email: str, token: str) -> None:
        self.http, self.email, self.token = http, email, token

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def save_card(self, token: str) -> dict[str, Any]:
        r = await self.http.post(
            "/users/me/payment-methods",
            json={"provider": "stripe", "token": token, "make_default": True},
            headers=self.headers,
        )
        assert r.status_code == 201, r.text
        return r.json()

    async def order(
        self, amount: int = 1999, key: str | None = None, **extra: Any
    ) -> httpx.Response:
        headers = dict(self.headers)
        if key:
            headers["Idempotency-Key"] = key
        return await self.http.post(
            "/orders", json={"amount": amount, "currency": "usd", **extra}, headers=headers
        )

    async def wait_status(self, order_id: str, wanted: set[str], timeout: float = 20) -> str:
        deadline = asyncio.get_running_loop().time() + timeout
        status = "?"
        while asyncio.get_running_loop().time() < deadline:
            r = await self.http.get(f"/orders/{order_id}/status", headers=self.headers)
            if r.status_code == 200:
                status = r.json()["status"]
                if status in wanted:
                    return status
            await asyncio.sleep(0.2)
        raise AssertionError(f"order {order_id} is {status}, wanted {wanted}")


async def sign_up(http: httpx.AsyncClient, email: str | None = None) -> Customer:
    email = email or f"buyer-{uuid.uuid4().hex[:10]}@example.com"
    r = await http.post(
        "/auth/signup", json={"email": email, "password": PASSWORD, "full_name": "Test Buyer"}
    )
    assert r.status_code == 201, r.text
    return await sign_in(http, email, PASSWORD)


async def paying_customer(http: httpx.AsyncClient) -> Customer:
    """A new customer whose default payment method is Stripe's test Visa card."""
    buyer = await sign_up(http)
    await buyer.save_card("pm_card_visa")
    return buyer


async def sign_in(http: httpx.AsyncClient, email: str, password: str) -> Customer:
    r = await http.post("/auth/signin", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return Customer(http, email, r.json()["access_token"])


async def payment_settled(
    owner: Customer, payment_id: str, wanted: set[str], timeout: float = 40
) -> dict[str, Any]:
    """The payment once its status is one of `wanted` (payment events are asynchronous)."""

    async def check() -> dict[str, Any] | None:
        r = await owner.http.get(f"/payments/{payment_id}", headers=owner.headers)
        body = r.json() if r.status_code == 200 else {}
        return body if body.get("status") in wanted else None

    return dict(await wait_for(check, timeout=timeout))


async def topic_messages(
    bootstrap: str, topic: str, key: str | None = None, contains: str | None = None
) -> list[dict[str, Any]]:
    """Messages on `topic` with key `key` (or whose raw value contains `contains`), from the start."""
    import json

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"e2e-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        idle = 0
        while idle < 3:
            batch = await consumer.getmany(timeout_ms=500)
            if not batch:
                idle += 1
                continue
            idle = 0
            for records in batch.values():
                for rec in records:
                    keyed = key is not None and rec.key is not None and rec.key.decode() == key
                    if keyed or (contains is not None and contains.encode() in rec.value):
                        found.append(json.loads(rec.value))
    finally:
        await consumer.stop()
    return found


async def assert_nowhere(
    suite: Suite,
    needles: tuple[str, ...],
    *,
    topics: tuple[str, ...] = (
        "order.create",
        "payment.event",
        "notification.dlq",
        "user.registered",
    ),
    written: tuple[str, ...] = ("order.create", "payment.event"),
    with_tables: tuple[str, ...] = (),
) -> None:
    """None of `needles` (card numbers, secrets, API keys) in any table, service log or one of
    `topics`; the topics in `written` must hold messages and the tables `with_tables` must exist (so the
    scan read something real)."""
    import json

    import asyncpg

    dsn = suite.procs["order"].env["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'"
        )
        assert {t["table_schema"] for t in tables} >= {
            "users",
            "orders",
            "payments",
            "notifications",
        }
        assert {t["table_name"] for t in tables} >= set(with_tables), with_tables
        for t in tables:
            rows = await conn.fetch(f'SELECT * FROM "{t["table_schema"]}"."{t["table_name"]}"')
            dump = "\n".join(str(dict(r)) for r in rows)
            for needle in needles:
                assert needle not in dump, f"{needle} in {t['table_schema']}.{t['table_name']}"
    finally:
        await conn.close()

    for proc in suite.procs.values():
        text = proc.log_path.read_text(errors="replace")
        assert text, f"{proc.name} wrote no log"
        for needle in needles:
            assert needle not in text, f"{needle} in the {proc.name} log"

    for topic in topics:
        messages = await topic_messages(suite.kafka.bootstrap, topic, contains="")
        assert messages or topic not in written, f"nothing on {topic} to scan"
        raw = json.dumps(messages)
        for needle in needles:
            assert needle not in raw, f"{needle} on {topic}"
