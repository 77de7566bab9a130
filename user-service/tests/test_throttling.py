"""Sign-in throttling in Redis: per account and per client IP, 429 with Retry-After."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import FastAPI

WRONG = "definitely-not-it-1"


async def test_five_failures_lock_the_account_for_the_window(
    new_account: Callable[..., Awaitable[Any]], make_client: Callable[..., httpx.AsyncClient]
) -> None:
    account = await new_account()
    async with make_client() as client:
        for _ in range(5):
            r = await client.post("/auth/signin", json={"email": account.email, "password": WRONG})
            assert r.status_code == 401
        # Even the right password is refused now, and from another address too.
        for attacker in (client, make_client()):
            r = await attacker.post(
                "/auth/signin", json={"email": account.email.upper(), "password": account.password}
            )
            assert r.status_code == 429, r.text
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["code"] == "too_many_attempts"
            retry_after = int(r.headers["retry-after"])
            assert 800 < retry_after <= 900
        form = await client.post(
            "/auth/token", data={"username": account.email, "password": account.password}
        )
        assert form.status_code == 429


async def test_a_successful_signin_clears_the_account_counter(
    new_account: Callable[..., Awaitable[Any]], make_client: Callable[..., httpx.AsyncClient]
) -> None:
    account = await new_account()
    async with make_client() as client:
        for _ in range(2):
            for _ in range(4):
                r = await client.post(
                    "/auth/signin", json={"email": account.email, "password": WRONG}
                )
                assert r.status_code == 401
            ok = await client.post(
                "/auth/signin", json={"email": account.email, "password": account.password}
            )
            assert ok.status_code == 200, ok.text


async def test_twenty_failures_from_one_ip_block_that_ip_only(
    new_account: Callable[..., Awaitable[Any]],
    make_client: Callable[..., httpx.AsyncClient],
    app: FastAPI,
) -> None:
    account = await new_account()
    ip = f"192.0.2.{uuid.uuid4().int % 250 + 1}"
    async with make_client(ip) as client:
        # Spread over many unknown accounts so the per-account limit never triggers.
        for i in range(20):
            r = await client.post(
                "/auth/signin",
                json={"email": f"spray{i}.{uuid.uuid4().hex[:6]}@example.com", "password": WRONG},
            )
            assert r.status_code == 401, (i, r.text)
        blocked = await client.post(
            "/auth/signin", json={"email": account.email, "password": account.password}
        )
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) > 0
    async with make_client() as elsewhere:
        ok = await elsewhere.post(
            "/auth/signin", json={"email": account.email, "password": account.password}
        )
        assert ok.status_code == 200

    # The counters are Redis keys with a TTL, shared by every replica; never immortal.
    keys = [k async for k in app.state.redis.scan_iter(match="user-service:signin-failures:*")]
    assert keys
    for key in keys:
        assert await app.state.redis.ttl(key) > 0
