"""Sessions: refresh tokens rotate, a reused one revokes its session, sign-out and revocation stick."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import jwt

from paygate_devstack.events_testing import wait_for

PASSWORD = "kettle-Orbit-7-quietly"  # conftest's STRONG_PASSWORD, which new_account uses


async def sign_in(client: httpx.AsyncClient, email: str, **headers: str) -> dict[str, Any]:
    r = await client.post(
        "/auth/signin", json={"email": email, "password": PASSWORD}, headers=headers
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/auth/refresh", json={"refresh_token": token})


async def test_sign_in_returns_a_short_access_token_and_an_opaque_refresh_token(
    client: httpx.AsyncClient, new_account: Callable[..., Awaitable[Any]]
) -> None:
    account = await new_account()
    pair = await sign_in(client, account.email)
    assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert pair["token_type"] == "bearer"
    assert 0 < pair["expires_in"] <= 900
    assert pair["refresh_token"].startswith("pgr_") and "." not in pair["refresh_token"]
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    assert uuid.UUID(claims["sid"])
    form = await client.post("/auth/token", data={"username": account.email, "password": PASSWORD})
    assert form.status_code == 200 and form.json()["refresh_token"].startswith("pgr_")


async def test_refresh_rotates_and_a_reused_token_revokes_the_whole_session(
    client: httpx.AsyncClient, new_account: Callable[..., Awaitable[Any]], audit_events: Any
) -> None:
    account = await new_account()
    a = (await sign_in(client, account.email))["refresh_token"]
    first = await refresh(client, a)
    assert first.status_code == 200, first.text
    b = first.json()["refresh_token"]
    assert b != a
    me = await client.get(
        "/users/me", headers={"Authorization": f"Bearer {first.json()['access_token']}"}
    )
    assert me.status_code == 200

    reused = await refresh(client, a)
    assert reused.status_code == 401
    assert reused.headers["content-type"] == "application/problem+json"
    assert reused.json()["code"] == "refresh_token_reused"
    after = await refresh(client, b)
    assert after.status_code == 401
    assert after.json()["code"] == "refresh_token_invalid"

    sid = jwt.decode(first.json()["access_token"], options={"verify_signature": False})["sid"]
    reuse_audit = await audit_events("auth.refresh_reused", sid)
    assert len(reuse_audit) == 1 and reuse_audit[0]["outcome"] == "denied"
    revoked = await audit_events("auth.session_revoked", sid)
    assert revoked[0]["details"]["reason"] == "refresh_reused"
    assert a not in str(reuse_audit) and b not in str(revoked)


async def test_sign_out_revokes_the_session(
    client: httpx.AsyncClient, new_account: Callable[..., Awaitable[Any]]
) -> None:
    account = await new_account()
    token = (await sign_in(client, account.email))["refresh_token"]
    r = await client.post("/auth/signout", json={"refresh_token": token})
    assert r.status_code == 204
    assert (await refresh(client, token)).status_code == 401
    # Signing out twice, or with a token nobody issued, is not an error.
    assert (await client.post("/auth/signout", json={"refresh_token": token})).status_code == 204
    assert (
        await client.post("/auth/signout", json={"refresh_token": "pgr_" + "x" * 43})
    ).status_code == 204


async def test_sessions_are_listed_and_one_can_be_revoked(
    client: httpx.AsyncClient, new_account: Callable[..., Awaitable[Any]]
) -> None:
    account = await new_account()
    laptop = await sign_in(client, account.email, **{"User-Agent": "laptop-browser/1.0"})
    phone = await sign_in(client, account.email, **{"User-Agent": "phone-app/2.0"})
    headers = {"Authorization": f"Bearer {laptop['access_token']}"}
    listed = await client.get("/users/me/sessions", headers=headers)
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    # The account fixture's own sign-in, then these two, newest first.
    assert [s["user_agent"] for s in items[:2]] == ["phone-app/2.0", "laptop-browser/1.0"]
    assert items[0]["ip"] and items[0]["expires_at"]
    paged = await client.get("/users/me/sessions", params={"limit": 1}, headers=headers)
    assert len(paged.json()["items"]) == 1 and paged.json()["next_cursor"]
    rest = await client.get(
        "/users/me/sessions", params={"cursor": paged.json()["next_cursor"]}, headers=headers
    )
    assert [s["id"] for s in rest.json()["items"]] == [s["id"] for s in items[1:]]

    phone_session = items[0]["id"]
    r = await client.delete(f"/users/me/sessions/{phone_session}", headers=headers)
    assert r.status_code == 204
    assert (await refresh(client, phone["refresh_token"])).status_code == 401
    assert (await refresh(client, laptop["refresh_token"])).status_code == 200
    again = await client.delete(f"/users/me/sessions/{phone_session}", headers=headers)
    assert again.status_code == 404 and again.json()["code"] == "session_not_found"

    stranger = await new_account()
    theirs = await client.delete(f"/users/me/sessions/{items[1]['id']}", headers=stranger.headers)
    assert theirs.status_code == 404


async def test_failed_sign_ins_are_audited_without_the_password(
    make_client: Callable[..., httpx.AsyncClient],
    new_account: Callable[..., Awaitable[Any]],
    audit_events: Any,
) -> None:
    account = await new_account()
    async with make_client(ip="10.99.1.7") as c:
        r = await c.post("/auth/signin", json={"email": account.email, "password": "wrong-pw-1234"})
    assert r.status_code == 401

    failed = await wait_for(lambda: audit_events("auth.signin_failed", account.id))
    assert failed[0]["outcome"] == "failed"
    assert failed[0]["source_ip"] == "10.99.1.7"
    assert "wrong-pw-1234" not in str(failed)
    assert await audit_events("auth.signed_in", account.id), "the fixture's sign-in is audited"


async def test_two_refreshes_racing_with_one_token_count_as_reuse(
    client: httpx.AsyncClient, new_account: Callable[..., Awaitable[Any]]
) -> None:
    """The token row is locked: one rotation wins, the other sees it spent and kills the session."""
    import asyncio

    account = await new_account()
    token = (await sign_in(client, account.email))["refresh_token"]
    first, second = await asyncio.gather(refresh(client, token), refresh(client, token))
    assert sorted([first.status_code, second.status_code]) == [200, 401]
    winner = first if first.status_code == 200 else second
    loser = second if winner is first else first
    assert loser.json()["code"] == "refresh_token_reused"
    # The winner's new token belongs to the revoked session.
    assert (await refresh(client, winner.json()["refresh_token"])).status_code == 401
