"""Sign-up, sign-in and the profile, against real PostgreSQL, Redis, Kafka and localstripe."""

from __future__ import annotations

import httpx


async def test_signup_signin_and_me(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/auth/signup",
        json={
            "email": "  Ann.Lee@Example.COM ",
            "password": "kettle-Orbit-7-quietly",
            "full_name": "Ann Lee",
        },
    )
    assert r.status_code == 201, r.text
    print(r.json())
