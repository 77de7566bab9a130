"""notification-service as a real process, killed with SIGKILL while 100 webhook deliveries are
due: after a restart every event is delivered under exactly one `webhook-id`, so a receiver that
dedupes on it (as Standard Webhooks asks) processes each event once; only sends that were on the
wire at the kill reach it a second time (see the README: why the wire stays at-least-once)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from paygate_common.events import PAYMENT_EVENT, PaymentEvent, new_event
from paygate_devstack import TOPICS
from paygate_devstack.asgi import serve_asgi
from paygate_devstack.components import Kafka
from paygate_devstack.events_testing import wait_for
from paygate_devstack.process import free_port

pytestmark = pytest.mark.timeout(240)

DELIVERIES = 100
CONCURRENCY = 8


@pytest.fixture(scope="module")
def isolated(paygate_stack: Any, devstack_dir: Path) -> Iterator[dict[str, Any]]:
    """user- and notification-service processes on a broker and database of their own."""
    kafka = Kafka(free_port(), log_path=devstack_dir / "logs" / "kafka-webhooks.log", topics=TOPICS)
    kafka.start()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "DATABASE_URL": paygate_stack.postgres.create_database(),
        "REDIS_URL": paygate_stack.redis.url.rsplit("/", 1)[0] + "/2",
        "NOTIFICATION_SERVICE_WEBHOOK_RETRY_SCHEDULE": "0s,1s,1s,2s,2s,5s",
        "NOTIFICATION_SERVICE_WEBHOOK_TIMEOUT_SECONDS": "3",
        "NOTIFICATION_SERVICE_WEBHOOK_LEASE_SECONDS": "5",
        "NOTIFICATION_SERVICE_WEBHOOK_CONCURRENCY": str(CONCURRENCY),
        "NOTIFICATION_SERVICE_WEBHOOK_PER_ENDPOINT_CONCURRENCY": str(CONCURRENCY),
        "NOTIFICATION_SERVICE_WEBHOOK_POLL_INTERVAL_SECONDS": "0.2",
        "USER_SERVICE_RATE_LIMIT_SIGNIN": "1000/minute",
    }
    procs = {}
    try:
        procs["user"] = paygate_stack.start_service("user", env)
        procs["notification"] = paygate_stack.start_service("notification", env)
        yield {"kafka": kafka, **procs}
    finally:
        for proc in procs.values():
            proc.stop()
            if proc in paygate_stack.started:
                paygate_stack.started.remove(proc)
        kafka.stop()


async def merchant_token(user_url: str) -> tuple[uuid.UUID, str]:
    email = f"merchant-{uuid.uuid4().hex[:10]}@example.com"
    password = "correct-horse-battery-staple"
    async with httpx.AsyncClient(base_url=user_url, timeout=15) as http:
        created = await http.post(
            "/auth/signup", json={"email": email, "password": password, "full_name": "Shop"}
        )
        assert created.status_code == 201, created.text
        signed_in = await http.post("/auth/signin", json={"email": email, "password": password})
        assert signed_in.status_code == 200, signed_in.text
        return uuid.UUID(created.json()["id"]), signed_in.json()["access_token"]


async def test_sigkill_with_100_due_deliveries_then_restart_delivers_all_with_stable_ids(
    isolated: dict[str, Any],
) -> None:
    seen: Counter[str] = Counter()  # webhook-id → POSTs that reached the receiver
    bodies: dict[str, set[bytes]] = {}  # webhook-id → every body it came with
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> JSONResponse:
        body = await request.body()
        webhook_id = request.headers["webhook-id"]
        seen[webhook_id] += 1
        bodies.setdefault(webhook_id, set()).add(body)
        await asyncio.sleep(0.2)  # slow enough that the kill lands mid-stream
        return JSONResponse({"ok": True})

    notification = isolated["notification"]
    merchant, token = await merchant_token(isolated["user"].url)
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        serve_asgi(app) as receiver,
        httpx.AsyncClient(base_url=notification.url, headers=headers, timeout=15) as api,
    ):
        put = await api.put("/webhooks/settings", json={"url": f"{receiver}/hook"})
        assert put.status_code == 200, put.text

        producer = AIOKafkaProducer(bootstrap_servers=isolated["kafka"].bootstrap, acks="all")
        await producer.start()
        try:
            payment_ids = {uuid.uuid4() for _ in range(DELIVERIES)}
            for payment_id in payment_ids:
                order_id = uuid.uuid4()
                event = new_event(
                    PaymentEvent(
                        payment_id=payment_id,
                        order_id=order_id,
                        user_id=merchant,
                        status="succeeded",  # type: ignore[arg-type]
                        amount=1000,
                        currency="usd",
                        provider="stripe",
                    ),
                    producer="payment-service",
                    aggregate_id=str(order_id),
                )
                await producer.send(
                    PAYMENT_EVENT, value=event.to_bytes(), key=str(order_id).encode()
                )
            await producer.flush()
        finally:
            await producer.stop()

        await wait_for(lambda: len(seen) >= 10 or None, timeout=60)
        notification.kill()
        before_kill = set(seen)  # a repeat can only be of a send the dead process had started
        at_kill = len(seen)
        assert at_kill < DELIVERIES, "everything was delivered before the kill: nothing tested"

        notification.restart(timeout=90)
        await wait_for(lambda: len(seen) >= DELIVERIES or None, timeout=120)

        async def all_succeeded() -> list[dict[str, Any]] | None:
            items: list[dict[str, Any]] = []
            cursor = None
            while True:
                params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
                page = (await api.get("/webhooks", params=params)).json()
                items += page["items"]
                cursor = page["next_cursor"]
                if not cursor:
                    break
            done = len(items) == DELIVERIES and all(i["status"] == "succeeded" for i in items)
            return items if done else None

        items = await wait_for(all_succeeded, timeout=60)

    # The receiver's distinct webhook-ids: every event once, none twice.
    assert len(seen) == DELIVERIES
    assert set(seen) == {i["webhook_id"] for i in items}
    # One id, one body: a repeat is the same message (same bytes, same signature input) ...
    assert all(len(b) == 1 for b in bodies.values())
    # ... and each event travelled under exactly one id (no second delivery row for an event).
    ids_by_payment: dict[str, set[str]] = {}
    for webhook_id, (body,) in ((w, tuple(b)) for w, b in bodies.items()):
        payment_id = json.loads(body)["data"]["payment_id"]
        ids_by_payment.setdefault(payment_id, set()).add(webhook_id)
    assert set(ids_by_payment) == {str(p) for p in payment_ids}
    assert all(len(ids) == 1 for ids in ids_by_payment.values())
    # On the wire it is at-least-once: only a send the killed process had started and not yet
    # recorded can repeat, once, and there are at most as many as it had sends in flight.
    repeated = {wid: n for wid, n in seen.items() if n > 1}
    assert set(repeated) <= before_kill
    assert all(n == 2 for n in repeated.values())
    assert len(repeated) <= CONCURRENCY
    print(f"kill at {at_kill}/{DELIVERIES} delivered; repeated after restart: {len(repeated)}")
