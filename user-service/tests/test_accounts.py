"""Sign-up, sign-in and the profile, against real PostgreSQL, Redis, Kafka and localstripe."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from fastapi import FastAPI
from sqlalchemy import text

from user_service.domain.passwords import PasswordHasher
from user_service.main import bootstrap_admin

PASSWORD = "kettle-Orbit-7-quietly"
PROBLEM = "application/problem+json"


def email() -> str:
    return f"ann.{uuid.uuid4().hex[:10]}@example.com"


async def outbox_rows(app: FastAPI, user_email: str) -> list[dict[str, Any]]:
    async with app.state.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT topic, key, event_type, payload FROM outbox"
                " WHERE payload -> 'payload' ->> 'email' = :email"
            ),
            {"email": user_email},
        )
        return [dict(r._mapping) for r in rows]


async def test_signup_signin_and_me_round_trip(client: httpx.AsyncClient) -> None:
    address = email()
    signup = await client.post(
        "/auth/signup", json={"email": address, "password": PASSWORD, "full_name": " Ann Lee "}
    )
    assert signup.status_code == 201, signup.text
    user = signup.json()
    assert set(user) == {"id", "email", "full_name", "phone", "role", "created_at"}
    assert user["email"] == address
    assert user["full_name"] == "Ann Lee"
    assert user["role"] == "customer"

    signin = await client.post("/auth/signin", json={"email": address, "password": PASSWORD})
    assert signin.status_code == 200, signin.text
    body = signin.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    me = await client.get("/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200, me.text
    assert me.json() == user


async def test_email_is_normalised_and_unique_whatever_the_case(
    client: httpx.AsyncClient,
) -> None:
    local = f"Mixed.Case.{uuid.uuid4().hex[:8]}"
    first = await client.post(
        "/auth/signup",
        json={"email": f"  {local}@Example.COM ", "password": PASSWORD, "full_name": "A"},
    )
    assert first.status_code == 201, first.text
    assert first.json()["email"] == f"{local.lower()}@example.com"

    for spelling in (f"{local}@example.com", f"{local.upper()}@EXAMPLE.com"):
        again = await client.post(
            "/auth/signup", json={"email": spelling, "password": PASSWORD, "full_name": "B"}
        )
        assert again.status_code == 409
        assert again.headers["content-type"] == PROBLEM
        assert again.json()["code"] == "email_taken"

    # Sign-in accepts any casing of the same address.
    signin = await client.post(
        "/auth/signin", json={"email": f"{local.upper()}@EXAMPLE.COM", "password": PASSWORD}
    )
    assert signin.status_code == 200


async def test_concurrent_signups_with_one_email_create_one_account(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    address = email()
    results = await asyncio.gather(
        *(
            client.post(
                "/auth/signup", json={"email": address, "password": PASSWORD, "full_name": "R"}
            )
            for _ in range(4)
        )
    )
    statuses = sorted(r.status_code for r in results)
    assert statuses == [201, 409, 409, 409], [r.text for r in results]
    assert {r.json()["code"] for r in results if r.status_code == 409} == {"email_taken"}
    assert len(await outbox_rows(app, address)) == 1


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short-1A", "too_short"),
        ("x" * 129, "too_long"),
        ("aaaaaaaaaaaa", "repeated_character"),
        ("Password123", "too_common"),
        ("1234567890", "too_common"),
        ("{email}", "matches_email"),
        ("{local}", "matches_email"),
    ],
)
async def test_weak_passwords_are_refused_with_a_reason(
    client: httpx.AsyncClient, app: FastAPI, password: str, reason: str
) -> None:
    address = email()
    password = password.format(email=address.upper(), local=address.split("@")[0] + "")
    if reason == "matches_email":
        assert len(password) >= 10  # long enough that only the email rule can refuse it
    r = await client.post(
        "/auth/signup", json={"email": address, "password": password, "full_name": "W"}
    )
    assert r.status_code == 422
    assert r.headers["content-type"] == PROBLEM
    problem = r.json()
    assert problem["code"] == "weak_password"
    assert problem["reason"] == reason
    assert problem["detail"]
    assert password not in r.text
    assert await outbox_rows(app, address) == []


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (
            json.dumps(
                {"email": "a@example.com", "password": PASSWORD, "full_name": "A", "role": "admin"}
            ),
            422,
            "validation_error",
        ),
        (
            json.dumps({"email": "a@example.com", "password": 1234567890123, "full_name": "A"}),
            422,
            "validation_error",
        ),
        (
            json.dumps({"email": "not-an-email", "password": PASSWORD, "full_name": "A"}),
            422,
            "validation_error",
        ),
        (json.dumps({"email": "a@example.com", "password": PASSWORD}), 422, "validation_error"),
        (
            json.dumps({"email": "a@example.com", "password": PASSWORD, "full_name": "   "}),
            422,
            "validation_error",
        ),
        ('{"email": "a@example.com", "password": ', 400, "malformed_json"),
        (json.dumps(["a", "b"]), 422, "validation_error"),
    ],
    ids=[
        "unknown-field",
        "wrong-type",
        "bad-email",
        "missing-field",
        "blank-name",
        "malformed",
        "array",
    ],
)
async def test_bad_signup_bodies_are_problem_json_with_stable_codes(
    client: httpx.AsyncClient, content: str, status: int, code: str
) -> None:
    r = await client.post(
        "/auth/signup", content=content, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["code"] == code
    assert PASSWORD not in r.text


async def test_wrong_password_and_unknown_email_look_the_same(client: httpx.AsyncClient) -> None:
    address = email()
    await client.post(
        "/auth/signup", json={"email": address, "password": PASSWORD, "full_name": "A"}
    )
    wrong = await client.post("/auth/signin", json={"email": address, "password": "nope" * 3})
    unknown = await client.post("/auth/signin", json={"email": email(), "password": PASSWORD})
    for r in (wrong, unknown):
        assert r.status_code == 401
        assert r.headers["content-type"] == PROBLEM
        assert r.headers["www-authenticate"] == "Bearer"
    assert {k: v for k, v in wrong.json().items() if k != "instance"} == {
        k: v for k, v in unknown.json().items() if k != "instance"
    }
    assert wrong.json()["code"] == "invalid_credentials"


async def test_unknown_email_costs_an_argon2_verification(app: FastAPI) -> None:
    """No early return for a missing account: the time does not reveal which emails exist."""
    hasher: PasswordHasher = app.state.password_hasher
    real = await hasher.hash(PASSWORD)

    async def timed(stored: str | None) -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        assert await hasher.verify(stored, "wrong-password-123") is False
        return loop.time() - start

    wrong = sorted([await timed(real) for _ in range(5)])[2]
    missing = sorted([await timed(None) for _ in range(5)])[2]
    assert missing > wrong * 0.5, (missing, wrong)


async def test_oauth2_password_form_issues_the_same_token(client: httpx.AsyncClient) -> None:
    address = email()
    await client.post(
        "/auth/signup", json={"email": address, "password": PASSWORD, "full_name": "A"}
    )
    r = await client.post("/auth/token", data={"username": address.upper(), "password": PASSWORD})
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "bearer"
    me = await client.get(
        "/users/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"}
    )
    assert me.json()["email"] == address
    bad = await client.post("/auth/token", data={"username": address, "password": "wrong-one-1"})
    assert bad.status_code == 401
    assert bad.json()["code"] == "invalid_credentials"


async def test_passwords_and_hashes_never_reach_responses_or_logs(
    client: httpx.AsyncClient, app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    address = email()
    secret = "Unique-Secret-Password-9f3c"
    responses = [
        await client.post(
            "/auth/signup", json={"email": address, "password": secret, "full_name": "L"}
        ),
        await client.post(
            "/auth/signup", json={"email": address, "password": secret, "full_name": "L"}
        ),
        await client.post("/auth/signin", json={"email": address, "password": secret}),
        await client.post("/auth/signin", json={"email": address, "password": secret + "x"}),
        await client.post("/auth/token", data={"username": address, "password": secret}),
        await client.post(
            "/auth/signup", json={"email": address, "password": secret, "full_name": "L", "x": 1}
        ),
    ]
    token = responses[2].json()["access_token"]
    responses.append(await client.get("/users/me", headers={"Authorization": f"Bearer {token}"}))
    async with app.state.engine.connect() as conn:
        stored_hash = (
            await conn.execute(
                text("SELECT password_hash FROM users WHERE email = :e"), {"e": address}
            )
        ).scalar_one()
    assert stored_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert secret not in stored_hash

    for r in responses:
        assert secret not in r.text
        assert stored_hash not in r.text
        assert "password_hash" not in r.text
    logged = "\n".join(f"{rec.getMessage()} {rec.__dict__}" for rec in caplog.records)
    assert caplog.records, "expected the service to log something"
    assert secret not in logged
    assert stored_hash not in logged
    assert stored_hash.split("$")[-1] not in logged


async def test_signup_writes_user_registered_to_the_outbox_and_kafka(
    client: httpx.AsyncClient, app: FastAPI, kafka_broker: Any
) -> None:
    address = email()
    r = await client.post(
        "/auth/signup", json={"email": address, "password": PASSWORD, "full_name": "Eve"}
    )
    user_id = r.json()["id"]
    rows = await outbox_rows(app, address)
    assert len(rows) == 1
    row = rows[0]
    assert row["topic"] == "user.registered"
    assert row["key"] == user_id
    assert row["event_type"] == "user.registered"
    assert row["payload"]["producer"] == "user-service"
    assert row["payload"]["payload"] == {
        "user_id": user_id,
        "email": address,
        "full_name": "Eve",
        "role": "customer",
    }

    # The relay publishes it: read the topic from the beginning and find our event.
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_broker.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [
            TopicPartition("user.registered", p)
            for p in (consumer.partitions_for_topic("user.registered") or {0})
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        found = None
        deadline = asyncio.get_running_loop().time() + 15
        while found is None and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    envelope = json.loads(record.value)
                    if envelope["aggregate_id"] == user_id:
                        found = envelope
        assert found is not None, "user.registered never reached Kafka"
        assert found["event_type"] == "user.registered"
        assert "password" not in json.dumps(found)
    finally:
        await consumer.stop()


async def test_bootstrap_admin_exists_and_restart_is_idempotent(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    settings = app.state.settings
    r = await client.post(
        "/auth/signin",
        json={
            "email": settings.bootstrap_admin_email,
            "password": settings.bootstrap_admin_password.get_secret_value(),
        },
    )
    assert r.status_code == 200, r.text
    me = await client.get(
        "/users/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"}
    )
    assert me.json()["role"] == "admin"
    assert me.json()["email"] == settings.bootstrap_admin_email.lower()

    async def admin_row() -> tuple[Any, ...]:
        async with app.state.engine.connect() as conn:
            return tuple(
                (
                    await conn.execute(
                        text(
                            "SELECT id, role, password_hash, updated_at FROM users WHERE email = :e"
                        ),
                        {"e": settings.bootstrap_admin_email.lower()},
                    )
                ).one()
            )

    before = await admin_row()
    again = await bootstrap_admin(
        app.state.sessionmaker,
        app.state.password_hasher,
        email=settings.bootstrap_admin_email,
        password=settings.bootstrap_admin_password.get_secret_value(),
        full_name="ignored",
    )
    assert again == before[0]
    assert await admin_row() == before


async def test_bootstrap_promotes_an_existing_customer(
    new_account: Callable[..., Awaitable[Any]], app: FastAPI
) -> None:
    account = await new_account()
    await bootstrap_admin(
        app.state.sessionmaker,
        app.state.password_hasher,
        email=account.email,
        password="Another-Admin-Password-1",
        full_name="ignored",
    )
    async with app.state.engine.connect() as conn:
        role = (
            await conn.execute(text("SELECT role FROM users WHERE id = :i"), {"i": account.id})
        ).scalar_one()
    assert role == "admin"
