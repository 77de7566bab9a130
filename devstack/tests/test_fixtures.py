"""The devstack fixtures start real components that do real work."""

from __future__ import annotations

import asyncio
import json
import smtplib
import socket
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import asyncpg
import httpx
import pytest
import stripe
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from paygate_devstack import TOPICS
from paygate_devstack.components import (
    Kafka,
    LocalStripe,
    Postgres,
    Redis,
    SmtpSink,
    message_body,
    to_asyncpg_dsn,
)
from paygate_devstack.pytest_plugin import PaygateStack
from paygate_devstack.services import SERVICES, spec_for


async def test_postgres_gives_each_caller_a_fresh_empty_database(postgres: Postgres) -> None:
    first = postgres.create_database()
    second = await postgres.acreate_database()
    assert first != second
    assert first.startswith(f"postgresql+asyncpg://postgres@127.0.0.1:{postgres.port}/")

    conn = await asyncpg.connect(to_asyncpg_dsn(first))
    try:
        await conn.execute("CREATE TABLE t (id int)")
        assert await conn.fetchval("SELECT count(*) FROM t") == 0
        tables = await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert tables == 1
    finally:
        await conn.close()

    conn = await asyncpg.connect(to_asyncpg_dsn(second))
    try:
        assert await conn.fetchval("SELECT to_regclass('public.t')") is None
        assert (await conn.fetchval("SHOW server_version")).startswith("18")
    finally:
        await conn.close()


def test_postgres_dsn_points_at_the_admin_database(postgres: Postgres) -> None:
    assert postgres.dsn == f"postgresql+asyncpg://postgres@127.0.0.1:{postgres.port}/postgres"


def test_redis_answers_ping(redis_server: Redis) -> None:
    assert redis_server.url.startswith("redis://127.0.0.1:")
    port = int(redis_server.url.rsplit(":", 1)[1].split("/")[0])
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
        time.sleep(0.1)
        assert sock.recv(100) == b"+OK\r\n$1\r\nv\r\n"


async def test_kafka_topics_exist_and_carry_messages(kafka_broker: Kafka) -> None:
    created = kafka_broker.create_topics(["devstack.test"], partitions=3)
    assert created == ["devstack.test"]
    assert kafka_broker.create_topics(["devstack.test", *TOPICS]) == []  # idempotent

    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait("devstack.test", b"hello", key=b"order-1")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        "devstack.test",
        bootstrap_servers=kafka_broker.bootstrap,
        group_id="devstack-test",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        message = await asyncio.wait_for(consumer.getone(), timeout=15)
        assert (message.key, message.value) == (b"order-1", b"hello")
        await consumer.commit()
    finally:
        await consumer.stop()


async def test_kafka_pause_hangs_the_broker_and_resume_recovers(kafka_broker: Kafka) -> None:
    kafka_broker.pause()
    try:
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka_broker.bootstrap, request_timeout_ms=1500
        )
        with pytest.raises(Exception):  # noqa: B017 - any client error: the broker hangs
            await asyncio.wait_for(producer.start(), timeout=3)
        await producer.stop()
    finally:
        kafka_broker.resume()

    # a private topic: the session's broker is shared with every other package's tests
    kafka_broker.create_topics(["devstack.pause"], partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    await producer.start()
    try:
        meta = await producer.send_and_wait("devstack.pause", b"after-resume")
        assert meta.topic == "devstack.pause"
    finally:
        await producer.stop()


async def test_localstripe_serves_the_official_sdk(localstripe: LocalStripe) -> None:
    client = stripe.StripeClient(
        localstripe.api_key,
        base_addresses={"api": localstripe.api_base},
        http_client=stripe.HTTPXClient(),
    )
    before = len(localstripe.payment_intents())
    intent = await client.v1.payment_intents.create_async(
        params={
            "amount": 1999,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "payment_method_types": ["card"],
        },
        options={"idempotency_key": "order-42"},
    )
    assert intent.status == "succeeded"
    intents = localstripe.payment_intents()
    assert len(intents) == before + 1
    assert intent.id in {i["id"] for i in intents}


def test_localstripe_accepts_a_webhook_registration(localstripe: LocalStripe) -> None:
    localstripe.register_webhook("http://127.0.0.1:9/webhooks/stripe", "whsec_test")
    with pytest.raises(httpx.HTTPStatusError):
        localstripe.register_webhook("not-a-url", "whsec_test")


def _send(sink: SmtpSink, to: str, subject: str, body: str) -> None:
    msg = EmailMessage()
    msg["From"] = "paygate@example.com"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(body)
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
        smtp.send_message(msg)


def test_smtp_sink_keeps_messages_and_survives_an_outage(smtp_sink: SmtpSink) -> None:
    smtp_sink.clear()
    _send(smtp_sink, "ada@example.com", "Payment received", "Your order is paid.")
    [received] = smtp_sink.messages()
    assert received["To"] == "ada@example.com"
    assert received["Subject"] == "Payment received"
    assert message_body(received).strip() == "Your order is paid."

    smtp_sink.stop()
    try:
        with pytest.raises(OSError):
            _send(smtp_sink, "bob@example.com", "lost", "nobody listens")
    finally:
        smtp_sink.start()
    _send(smtp_sink, "bob@example.com", "Second", "after the outage")
    assert [m["Subject"] for m in smtp_sink.messages()] == ["Payment received", "Second"]
    smtp_sink.clear()
    assert smtp_sink.messages() == []


def test_stack_env_names_every_component_and_service(paygate_stack: PaygateStack) -> None:
    env = paygate_stack.env
    assert env["DATABASE_URL"] == paygate_stack.database_url
    assert env["DATABASE_URL"].endswith("/paygate")
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == paygate_stack.kafka.bootstrap
    assert env["KAFKA_ENABLE_IDEMPOTENCE"] == "false"
    assert env["STRIPE_WEBHOOK_SECRET"].startswith("whsec_")
    assert env["ENVIRONMENT"] == "test"
    urls = json.loads(env["PAYGATE_SERVICE_URLS"])
    assert set(urls) == {s.name for s in SERVICES}
    assert env["JWKS_URL"] == f"{urls['user']}/.well-known/jwks.json"
    assert set(paygate_stack.stack_json()) >= {"database", "redis", "kafka", "stripe", "smtp"}


def test_registry_finds_services_by_name_folder_or_package() -> None:
    assert spec_for("user") is spec_for("user-service") is spec_for("user_service")
    assert spec_for("order").app == "order_service.main:create_app"
    assert SERVICES[0].name == "gateway" and SERVICES[0].schema is None
    assert [s.port for s in SERVICES] == list(range(8000, 8009))


_TINY_APP = """
from fastapi import FastAPI

def create_app():
    app = FastAPI()

    @app.get("/ready")
    def ready():
        return {"status": "ok"}

    return app
"""


def test_service_process_runs_migrations_and_waits_for_ready(
    paygate_stack: PaygateStack, tmp_path: Path
) -> None:
    # A throwaway service folder shaped like a real one, started by the same code as make run.
    from paygate_devstack.services import ServiceProcess

    folder = tmp_path / "order-service"
    (folder / "src" / "order_service").mkdir(parents=True)
    (folder / "src" / "order_service" / "__init__.py").write_text("")
    (folder / "src" / "order_service" / "main.py").write_text(_TINY_APP)
    service = ServiceProcess(
        spec_for("order"),
        env={**paygate_stack.env, "PYTHONPATH": str(folder / "src")},
        root=tmp_path,
        log_dir=tmp_path / "logs",
    )
    service.env["PYTHONPATH"] = str(folder / "src")
    service.migrate()  # no alembic.ini: nothing to do
    service.start(timeout=30)
    try:
        assert httpx.get(f"{service.url}/ready").status_code == 200
        service.kill()
        assert not service.running
        service.restart(timeout=30)
        assert httpx.get(f"{service.url}/ready").status_code == 200
    finally:
        service.stop()
    assert not service.running


def test_launcher_cli_explains_itself() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "paygate_devstack", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "run" in result.stdout and "stop" in result.stdout


_LAUNCHER = """
import sys, time
from pathlib import Path
from paygate_devstack.components import Redis
from paygate_devstack.process import free_port
redis = Redis(Path(sys.argv[1]), free_port(), log_path=Path(sys.argv[1]) / "redis.log")
redis.start()
print(redis.pid, flush=True)
time.sleep(60)
"""


def test_children_die_with_a_launcher_killed_by_sigkill(tmp_path: Path) -> None:
    import os
    import signal

    launcher = subprocess.Popen(
        [sys.executable, "-c", _LAUNCHER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert launcher.stdout is not None
        child = int(launcher.stdout.readline())
        os.kill(child, 0)  # running
        launcher.send_signal(signal.SIGKILL)
        launcher.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.kill(child, signal.SIGKILL)
            pytest.fail("redis outlived its SIGKILLed launcher")
    finally:
        launcher.kill()


def test_service_auth_is_a_token_the_audience_accepts_from_that_caller() -> None:
    from pydantic import SecretStr

    from paygate_common.auth import ServiceTokenInvalid, verify_service_token
    from paygate_devstack.testkit import service_auth
    from user_service.settings import Settings as UserSettings

    secret = SecretStr("s" * 48)
    header = service_auth(secret, caller="payment", audience="user")["Authorization"]
    user_service = UserSettings(service_token_secret=secret)
    assert verify_service_token(header.removeprefix("Bearer "), user_service) == "payment-service"
    wrong_audience = service_auth(secret, caller="payment", audience="order")["Authorization"]
    with pytest.raises(ServiceTokenInvalid):
        verify_service_token(wrong_audience.removeprefix("Bearer "), user_service)
