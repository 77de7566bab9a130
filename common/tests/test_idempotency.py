"""Idempotency-Key against a real PostgreSQL: replay, reuse, in-flight duplicates, release, expiry."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Header, Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from starlette.responses import Response

from paygate_common.db import SessionDep, create_sessionmaker
from paygate_common.errors import install_error_handlers
from paygate_common.idempotency import (
    IdempotencyKeyHeader,
    IdempotencyKeyInProgress,
    claim_key,
    complete_claim,
    idempotency_table,
    idempotent_request,
    purge_expired_keys,
)

metadata = MetaData()
idempotency_table(metadata)
charges = Table(
    "charges",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", String(64), nullable=False),
    Column("amount", Integer, nullable=False),
)


class Refund(BaseModel):
    amount: int
    currency: str = "usd"

    def normalised(self) -> dict[str, Any]:
        return {"amount": self.amount, "currency": self.currency.lower()}


class ChargeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: int
    fail: bool = False
    delay: float = 0.0


def build_app(sessionmaker: async_sessionmaker[AsyncSession]) -> FastAPI:
    app = FastAPI()
    app.state.sessionmaker = sessionmaker
    app.state.executions = 0
    install_error_handlers(app)

    @app.post("/charges", status_code=201)
    async def create_charge(
        request: Request,
        payload: ChargeCreate,
        session: SessionDep,
        idempotency_key: IdempotencyKeyHeader,
        x_user: str = Header(),
    ) -> Response:
        async with idempotent_request(
            request, key=idempotency_key, scope=x_user, session=session
        ) as idem:
            if idem.replay is not None:
                return idem.replay
            request.app.state.executions += 1
            await asyncio.sleep(payload.delay)
            if payload.fail:
                raise RuntimeError("provider exploded")
            charge_id = (
                await session.execute(
                    charges.insert()
                    .values(user_id=x_user, amount=payload.amount)
                    .returning(charges.c.id)
                )
            ).scalar_one()
            return await idem.respond({"id": charge_id, "amount": payload.amount}, status_code=201)

    return app


@pytest.fixture(scope="module")
async def sessionmaker(postgres: Any) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    url = await postgres.acreate_database()
    engine = create_async_engine(url, pool_size=15)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield create_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
async def app(sessionmaker: async_sessionmaker[AsyncSession]) -> FastAPI:
    return build_app(sessionmaker)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def user() -> str:
    return str(uuid.uuid4())


async def charge_count(sm: async_sessionmaker[AsyncSession], user_id: str) -> int:
    async with sm() as s:
        return (
            await s.execute(
                select(func.count()).select_from(charges).where(charges.c.user_id == user_id)
            )
        ).scalar_one()


async def post(
    client: httpx.AsyncClient, who: str, key: str | None, body: Any, **kw: Any
) -> httpx.Response:
    headers = {"x-user": who}
    if key is not None:
        headers["Idempotency-Key"] = key
    return await client.post("/charges", json=body, headers=headers, **kw)


async def test_same_key_and_body_replays_the_first_response_without_running_again(
    client: httpx.AsyncClient, app: FastAPI, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    who = user()
    first = await post(client, who, "k-1", {"amount": 500})
    # Same JSON with keys in another order and other whitespace is the same request.
    second = await client.post(
        "/charges",
        content=b'{\n  "amount" : 500 }',
        headers={"x-user": who, "Idempotency-Key": "k-1", "content-type": "application/json"},
    )
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    assert second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert app.state.executions == 1
    assert await charge_count(sessionmaker, who) == 1


async def test_canonical_json_ignores_key_order(
    client: httpx.AsyncClient, app: FastAPI, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    who = user()
    a = await client.post(
        "/charges",
        content=b'{"amount": 7, "delay": 0}',
        headers={"x-user": who, "Idempotency-Key": "order", "content-type": "application/json"},
    )
    b = await client.post(
        "/charges",
        content=b'{"delay":0,"amount":7}',
        headers={"x-user": who, "Idempotency-Key": "order", "content-type": "application/json"},
    )
    assert a.status_code == b.status_code == 201
    assert b.headers.get("Idempotent-Replayed") == "true"
    assert a.json() == b.json()
    assert await charge_count(sessionmaker, who) == 1


async def test_same_key_with_a_different_body_is_refused_with_422(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    who = user()
    assert (await post(client, who, "k-2", {"amount": 500})).status_code == 201
    reused = await post(client, who, "k-2", {"amount": 501})
    assert reused.status_code == 422
    assert reused.headers["content-type"].startswith("application/problem+json")
    assert reused.json()["code"] == "idempotency_key_reused"
    assert await charge_count(sessionmaker, who) == 1


async def test_keys_are_scoped_to_the_caller(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    alice, bob = user(), user()
    a = await post(client, alice, "shared-key", {"amount": 100})
    b = await post(client, bob, "shared-key", {"amount": 100})
    assert a.status_code == b.status_code == 201
    assert "Idempotent-Replayed" not in b.headers
    assert a.json()["id"] != b.json()["id"]


async def test_ten_concurrent_identical_requests_execute_exactly_once(
    client: httpx.AsyncClient, app: FastAPI, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    who = user()
    body = {"amount": 900, "delay": 0.3}
    responses = await asyncio.gather(*(post(client, who, "burst", body) for _ in range(10)))
    statuses = sorted(r.status_code for r in responses)
    assert app.state.executions == 1
    assert await charge_count(sessionmaker, who) == 1
    originals = [
        r for r in responses if r.status_code == 201 and "Idempotent-Replayed" not in r.headers
    ]
    assert len(originals) == 1
    for r in responses:
        if r.status_code == 409:
            assert r.json()["code"] == "idempotency_key_in_progress"
        else:
            assert r.status_code == 201 and r.json() == originals[0].json(), statuses
    # Once it finished, a retry gets the stored response.
    again = await post(client, who, "burst", body)
    assert again.status_code == 201 and again.json() == originals[0].json()
    assert again.headers["Idempotent-Replayed"] == "true"


async def test_a_duplicate_while_the_first_is_running_gets_409(
    client: httpx.AsyncClient,
) -> None:
    who = user()
    body = {"amount": 10, "delay": 0.5}
    slow = asyncio.create_task(post(client, who, "slow", body))
    await asyncio.sleep(0.2)
    dup = await post(client, who, "slow", body)
    assert dup.status_code == 409
    assert dup.json()["code"] == "idempotency_key_in_progress"
    assert (await slow).status_code == 201


async def test_a_failed_request_releases_the_key_so_a_retry_runs(
    client: httpx.AsyncClient, app: FastAPI, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    who = user()
    failed = await post(client, who, "flaky", {"amount": 42, "fail": True})
    assert failed.status_code == 500
    assert failed.json()["code"] == "internal_error"
    # The same key with the same (fixed) body runs again; nothing was stored the first time.
    async with sessionmaker() as s:
        left = (
            await s.execute(text("SELECT count(*) FROM idempotency_keys WHERE key = 'flaky'"))
        ).scalar_one()
    assert left == 0
    retry = await post(client, who, "flaky", {"amount": 42})
    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry.headers
    assert await charge_count(sessionmaker, who) == 1


@pytest.mark.parametrize("bad_key", ["", "has space", "x" * 256, "ünïcode", "tab\tkey"])
async def test_garbage_keys_are_refused_with_400(client: httpx.AsyncClient, bad_key: str) -> None:
    resp = await client.post(
        "/charges",
        json={"amount": 1},
        headers={"x-user": user(), "Idempotency-Key": bad_key.encode("utf-8")},
    )
    assert resp.status_code == 400
    assert resp.json()["code"] == "idempotency_key_invalid"


async def test_without_a_key_every_request_runs(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    who = user()
    a = await post(client, who, None, {"amount": 3})
    b = await post(client, who, None, {"amount": 3})
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]
    assert await charge_count(sessionmaker, who) == 2


async def test_expired_keys_are_purged_and_can_be_used_again(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    who = user()
    first = await post(client, who, "old", {"amount": 5})
    assert first.status_code == 201
    t = idempotency_table(metadata)
    async with sessionmaker() as s, s.begin():
        await s.execute(
            update(t)
            .where(t.c.key == "old")
            .values(expires_at=func.now() - text("interval '1 second'"))
        )
    purged = await purge_expired_keys(sessionmaker, batch_size=1)
    assert purged >= 1
    async with sessionmaker() as s:
        assert (
            await s.execute(select(func.count()).select_from(t).where(t.c.key == "old"))
        ).scalar_one() == 0
    again = await post(client, who, "old", {"amount": 5})
    assert again.status_code == 201
    assert "Idempotent-Replayed" not in again.headers
    assert again.json()["id"] != first.json()["id"]


async def test_kept_for_at_least_a_day(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    who = user()
    await post(client, who, "ttl", {"amount": 5})
    async with sessionmaker() as s:
        ttl = (
            await s.execute(
                text(
                    "SELECT extract(epoch FROM expires_at - created_at) FROM idempotency_keys "
                    "WHERE key = 'ttl' AND scope LIKE :scope"
                ),
                {"scope": f"{who}|%"},
            )
        ).scalar_one()
    assert ttl >= 24 * 3600


async def test_a_stale_claim_is_taken_over_and_the_old_holder_cannot_complete(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    scope = f"{user()}|POST /charges"
    first = await claim_key(
        sessionmaker, scope=scope, key="stale", request_hash="h", lease_seconds=0
    )
    assert first.claim is not None
    # The first holder "died": its lease is over, so the retry takes the key over.
    second = await claim_key(sessionmaker, scope=scope, key="stale", request_hash="h")
    assert second.claim is not None and second.claim.token != first.claim.token
    async with sessionmaker() as s, s.begin():
        with pytest.raises(IdempotencyKeyInProgress):
            await complete_claim(s, first.claim, status_code=201, body={"late": True})
    async with sessionmaker() as s, s.begin():
        await complete_claim(s, second.claim, status_code=201, body={"ok": True})
    replay = await claim_key(sessionmaker, scope=scope, key="stale", request_hash="h")
    assert replay.replay is not None
    assert replay.replay.body == {"ok": True} and replay.replay.status_code == 201


async def test_a_normalised_fingerprint_replays_bodies_that_mean_the_same(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """`fingerprint=` (the validated body) instead of the raw bytes: defaults and case folded."""
    app = FastAPI()
    app.state.sessionmaker = sessionmaker
    install_error_handlers(app)

    @app.post("/refunds", status_code=201)
    async def refund(
        request: Request,
        payload: Refund,
        session: SessionDep,
        idempotency_key: IdempotencyKeyHeader,
    ) -> Response:
        async with idempotent_request(
            request,
            key=idempotency_key,
            scope="merchant",
            session=session,
            fingerprint=payload.normalised(),
        ) as idem:
            if idem.replay is not None:
                return idem.replay
            return await idem.respond({"id": str(uuid.uuid4())}, status_code=201)

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    key = f"norm-{uuid.uuid4().hex}"
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        first = await c.post(
            "/refunds", json={"amount": 5, "currency": "USD"}, headers={"Idempotency-Key": key}
        )
        same = await c.post("/refunds", json={"amount": 5}, headers={"Idempotency-Key": key})
        other = await c.post("/refunds", json={"amount": 6}, headers={"Idempotency-Key": key})
    assert (first.status_code, same.status_code) == (201, 201)
    assert same.json() == first.json() and same.headers.get("Idempotent-Replayed") == "true"
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
