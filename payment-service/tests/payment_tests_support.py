"""Helpers for payment-service tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
import uuid
from pathlib import Path
from typing import Any, ClassVar

import httpx
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from paygate_common.auth import SigningKey, issue_access_token, jwks_document, verify_service_token
from paygate_common.events import (
    ORDER_CREATE,
    ORDER_EVENT,
    PAYMENT_EVENT,
    EventEnvelope,
    OrderCancelled,
    OrderCreated,
    new_event,
)
from paygate_common.internal.users import PaymentContextRead
from paygate_common.settings import ServiceSettings
from paygate_devstack.events_testing import wait_for
from payment_service.store.tables import payments

ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"
SERVICE_TOKEN_SECRET = secrets.token_urlsafe(48)
WEBHOOK_SECRET = "whsec_" + secrets.token_urlsafe(24)
OLD_WEBHOOK_SECRET = "whsec_" + secrets.token_urlsafe(24)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """An ASGI app served by uvicorn in this event loop on a real port; stoppable, restartable."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._task = asyncio.create_task(self._server.serve())
        deadline = time.monotonic() + 60
        while not self._server.started:
            if self._task.done():
                self._task.result()
            if time.monotonic() > deadline:
                raise TimeoutError("server did not start")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        self._server = self._task = None


class _UserServiceIdentity(ServiceSettings):
    service_name: ClassVar[str] = "user-service"


class UserServiceStandIn:
    """Stands in for user-service (no app of its own yet): payment context + JWKS."""

    def __init__(self, signing_key: SigningKey) -> None:
        self.users: dict[uuid.UUID, dict[str, Any]] = {}
        self.calls = 0
        app = FastAPI()
        identity = _UserServiceIdentity(service_token_secret=SERVICE_TOKEN_SECRET)

        @app.get("/.well-known/jwks.json")
        async def jwks() -> dict[str, Any]:
            return jwks_document([signing_key])

        @app.get("/internal/users/{user_id}/payment-context")
        async def payment_context(user_id: uuid.UUID, request: Request) -> JSONResponse:
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            verify_service_token(token, identity)  # raises (500 here) if payment-service's is bad
            self.calls += 1
            user = self.users.get(user_id)
            if user is None:
                return JSONResponse({"code": "user_not_found", "status": 404}, status_code=404)
            wanted = request.query_params.get("payment_method_id")
            if wanted and wanted != user["payment_method"]["id"]:
                # As user-service: another user's method is simply not this user's.
                return JSONResponse(
                    {"code": "payment_method_not_found", "status": 404}, status_code=404
                )
            # Built with user-service's own response model: the stand-in cannot drift from it.
            answer = PaymentContextRead.model_validate({"user_id": user_id, **user})
            return JSONResponse(answer.model_dump(mode="json"))

        self.server = LiveServer(app)

    @property
    def url(self) -> str:
        return self.server.url

    def add_user(self, token: str, customer: str | None) -> uuid.UUID:
        user_id = uuid.uuid4()
        self.add_user_with_id(user_id, token, customer)
        return user_id

    def add_user_with_id(self, user_id: uuid.UUID, token: str, customer: str | None) -> None:
        self.users[user_id] = {
            "email": "buyer@example.com",
            "full_name": "Test Buyer",
            "provider_customer_id": customer,
            "payment_method": {
                "id": str(uuid.uuid4()),
                "provider": "stripe",
                "token": token,
                "brand": "visa",
                "last4": "4242",
                "exp_month": 12,
                "exp_year": 2030,
            },
        }


class Stripe:
    """Test-side access to localstripe (creating customers and methods is the user's job)."""

    def __init__(self, localstripe: Any) -> None:
        self.base = localstripe.api_base
        self.headers = {"Authorization": f"Bearer {localstripe.api_key}"}

    async def _post(self, path: str, data: dict[str, Any]) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.base, headers=self.headers) as client:
            response = await client.post(path, data=data)
            response.raise_for_status()
            return dict(response.json())

    async def customer_with(self, token: str) -> tuple[str, str]:
        """A customer with `token` attached; returns (customer id, PaymentMethod id)."""
        customer = await self._post("/v1/customers", {"email": "buyer@example.com"})
        pm = await self._post(f"/v1/payment_methods/{token}/attach", {"customer": customer["id"]})
        return customer["id"], pm["id"]

    async def card_method(self, number: str) -> str:
        """A PaymentMethod from a raw test card number (test-only: never through our service)."""
        pm = await self._post(
            "/v1/payment_methods",
            {
                "type": "card",
                "card[number]": number,
                "card[exp_month]": "12",
                "card[exp_year]": "2030",
                "card[cvc]": "123",
            },
        )
        return str(pm["id"])

    async def refunds_for(self, intent_id: str) -> list[dict[str, Any]]:
        """Every Refund localstripe holds for a PaymentIntent (a double refund shows here)."""
        found: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 100, "payment_intent": intent_id}
        async with httpx.AsyncClient(base_url=self.base, headers=self.headers) as client:
            while True:
                page = (await client.get("/v1/refunds", params=params)).json()
                found += page["data"]
                if not page.get("has_more") or not page["data"]:
                    return found
                params["starting_after"] = page["data"][-1]["id"]

    async def intent(self, intent_id: str) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.base, headers=self.headers) as client:
            return dict((await client.get(f"/v1/payment_intents/{intent_id}")).json())

    async def intents_for(self, payment_id: uuid.UUID) -> list[dict[str, Any]]:
        """Every PaymentIntent localstripe holds for our payment (a double charge shows here)."""
        found: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 100}
        async with httpx.AsyncClient(base_url=self.base, headers=self.headers) as client:
            while True:
                page = (await client.get("/v1/payment_intents", params=params)).json()
                found += [
                    pi
                    for pi in page["data"]
                    if (pi.get("metadata") or {}).get("payment_id") == str(payment_id)
                ]
                if not page.get("has_more") or not page["data"]:
                    return found
                params["starting_after"] = page["data"][-1]["id"]


class Orders:
    """Plays order-service: publishes `order.create` / `order.cancelled` envelopes."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer

    async def create(self, user_id: uuid.UUID, amount: int = 1999, **context: Any) -> EventEnvelope:
        """An `order.create`; `context` is the payment context order-service carries in it
        (`payment_method_token=`, `provider_customer_id=`, ...); without it, the old shape."""
        order_id = uuid.uuid4()
        envelope = new_event(
            OrderCreated(
                order_id=order_id, user_id=user_id, amount=amount, currency="usd", **context
            ),
            producer="order-service",
            aggregate_id=str(order_id),
        )
        await self.send(ORDER_CREATE, envelope)
        return envelope

    async def cancel(self, order_id: uuid.UUID, user_id: uuid.UUID) -> None:
        envelope = new_event(
            OrderCancelled(order_id=order_id, user_id=user_id, reason="stale"),
            producer="order-service",
            aggregate_id=str(order_id),
        )
        await self.send(ORDER_EVENT, envelope)

    async def send(self, topic: str, envelope: EventEnvelope) -> None:
        await self.producer.send_and_wait(
            topic, envelope.to_bytes(), key=envelope.aggregate_id.encode()
        )


class PaymentEvents:
    """Reads `payment.event` from the beginning with a private group; finds events by key."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.seen: list[tuple[str, EventEnvelope]] = []
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            PAYMENT_EVENT,
            bootstrap_servers=self.bootstrap,
            group_id=f"payment-tests-{uuid.uuid4().hex}",
            auto_offset_reset="earliest",
        )
        await self._consumer.start()

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def for_order(
        self, order_id: uuid.UUID, *, count: int = 1, timeout: float = 20
    ) -> list[tuple[str, EventEnvelope]]:
        """The (key, envelope) pairs published for an order once `count` have arrived."""
        assert self._consumer is not None
        deadline = time.monotonic() + timeout
        while True:
            mine = [(k, e) for k, e in self.seen if e.aggregate_id == str(order_id)]
            if len(mine) >= count or time.monotonic() > deadline:
                return mine
            batch = await self._consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    key = record.key.decode() if record.key else ""
                    self.seen.append((key, EventEnvelope.from_bytes(record.value)))


async def payment_for_order(sessionmaker: Any, order_id: uuid.UUID) -> Any:
    async with sessionmaker() as session:
        return (
            await session.execute(select(payments).where(payments.c.order_id == order_id))
        ).first()


def access_token(signing_key: SigningKey, user_id: uuid.UUID, role: str = "customer") -> str:
    token, _ = issue_access_token(
        signing_key,
        user_id=user_id,
        role=role,  # type: ignore[arg-type]
        email=None,
        issuer="paygate",
        audience="paygate-api",
        ttl_seconds=300,
    )
    return token


SETTLED = {"requires_capture", "succeeded", "failed", "requires_action", "cancelled"}


class Merchant:
    """A user of the payments API (the merchant's backend with its own token)."""

    def __init__(self, server: LiveServer, signing_key: SigningKey, user_id: uuid.UUID) -> None:
        self.url = server.url
        self.user_id = user_id
        self.headers = {"Authorization": f"Bearer {access_token(signing_key, user_id)}"}

    async def post(
        self, path: str, body: dict[str, Any] | None = None, key: str | None = None
    ) -> httpx.Response:
        headers = dict(self.headers)
        if key:
            headers["Idempotency-Key"] = key
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            return await client.post(path, json=body, headers=headers)

    async def get(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            return await client.get(path, headers=self.headers)

    async def pay(self, amount: int = 1000, **extra: Any) -> dict[str, Any]:
        r = await self.post("/payments", {"amount": amount, "currency": "usd", **extra})
        assert r.status_code == 202, r.text
        return dict(r.json())

    async def settled(self, payment_id: str, wanted: set[str] = SETTLED) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            body = (await self.get(f"/payments/{payment_id}")).json()
            return body if body["status"] in wanted else None

        return dict(await wait_for(check, timeout=25))


async def paypal_access_token(http: httpx.AsyncClient) -> str:
    """An OAuth2 token from the PayPal stand-in (`http` has its base URL)."""
    from paygate_devstack import paypal_standin

    answer = await http.post(
        "/v1/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(paypal_standin.CLIENT_ID, paypal_standin.CLIENT_SECRET),
    )
    return str(answer.json()["access_token"])
