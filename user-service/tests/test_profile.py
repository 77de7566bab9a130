"""Profile changes, and the internal user administration admin-service builds on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest


async def test_profile_update_changes_only_what_is_sent_and_is_audited(
    client: httpx.AsyncClient, new_account: Callable[..., Awaitable[Any]], audit_events: Any
) -> None:
    account = await new_account()
    r = await client.patch("/users/me", json={"phone": "+14155550123"}, headers=account.headers)
    assert r.status_code == 200, r.text
    assert (r.json()["phone"], r.json()["full_name"]) == ("+14155550123", "Ann Lee")
    r = await client.patch("/users/me", json={"full_name": " Ann Q. Lee "}, headers=account.headers)
    assert (r.json()["phone"], r.json()["full_name"]) == ("+14155550123", "Ann Q. Lee")
    me = await client.get("/users/me", headers=account.headers)
    assert me.json()["phone"] == "+14155550123" and me.json()["full_name"] == "Ann Q. Lee"
    cleared = await client.patch("/users/me", json={"phone": None}, headers=account.headers)
    assert cleared.json()["phone"] is None
    events = await audit_events("user.updated", account.id)
    assert [e["details"]["fields"] for e in events] == [["phone"], ["full_name"], ["phone"]]
    assert "+14155550123" not in str(events)


@pytest.mark.parametrize(
    "body",
    [
        {"phone": "4155550123"},
        {"phone": "+0155550123"},
        {"phone": "+1415555012345678"},
        {"phone": "+1 415 555 0123"},
        {"phone": 14155550123},
        {"full_name": None},
        {"full_name": ""},
        {"email": "new@example.com"},
        {"role": "admin"},
    ],
    ids=[
        "no-plus",
        "leading-zero",
        "too-long",
        "spaces",
        "number",
        "null-name",
        "empty-name",
        "email",
        "role",
    ],
)
async def test_bad_profile_updates_are_422_problems(
    client: httpx.AsyncClient, new_account: Callable[..., Awaitable[Any]], body: dict[str, Any]
) -> None:
    account = await new_account()
    r = await client.patch("/users/me", json=body, headers=account.headers)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "validation_error"
    assert (await client.get("/users/me", headers=account.headers)).json()["role"] == "customer"


async def test_internal_search_filters_by_email_role_and_status(
    client: httpx.AsyncClient,
    new_account: Callable[..., Awaitable[Any]],
    service_headers: dict[str, str],
) -> None:
    tag = "srch" + str(id(client))[-6:]
    accounts = [await new_account(email=f"{tag}.{i}_x@example.com") for i in range(3)]
    await new_account(email=f"other{tag[4:]}@example.com")
    merchant, disabled = accounts[0], accounts[1]
    for account, change in ((merchant, {"role": "merchant"}), (disabled, {"disabled": True})):
        r = await client.patch(
            f"/internal/users/{account.id}", json=change, headers=service_headers
        )
        assert r.status_code == 200, r.text

    async def search(**params: Any) -> list[str]:
        r = await client.get("/internal/users", params=params, headers=service_headers)
        assert r.status_code == 200, r.text
        return [u["email"] for u in r.json()["items"]]

    assert await search(q=tag.upper()) == [a.email for a in accounts[::-1]]
    assert await search(q=tag, role="merchant") == [merchant.email]
    assert await search(q=tag, disabled="true") == [disabled.email]
    # `_` is a literal, not LIKE's wildcard
    assert await search(q=f"{tag}.1_x") == [disabled.email]
    assert await search(q=f"{tag}.1%") == []
    page = await client.get(
        "/internal/users", params={"q": tag, "limit": 2}, headers=service_headers
    )
    rest = await client.get(
        "/internal/users",
        params={"q": tag, "cursor": page.json()["next_cursor"]},
        headers=service_headers,
    )
    assert [u["email"] for u in rest.json()["items"]] == [accounts[0].email]
    item = page.json()["items"][0]
    assert set(item) >= {"id", "email", "role", "disabled", "created_at", "updated_at"}
    assert "password_hash" not in item
    unauth = await client.get("/internal/users", headers=accounts[2].headers)
    assert unauth.status_code == 401


async def test_disabling_a_user_revokes_sessions_and_refuses_sign_in_and_refresh(
    client: httpx.AsyncClient,
    new_account: Callable[..., Awaitable[Any]],
    service_headers: dict[str, str],
    audit_events: Any,
) -> None:
    account = await new_account()
    signin = await client.post(
        "/auth/signin", json={"email": account.email, "password": account.password}
    )
    refresh_token = signin.json()["refresh_token"]
    admin_id = "6f0b1d55-7c7e-4d7a-9a9e-3f3e2f1d0c0b"
    r = await client.patch(
        f"/internal/users/{account.id}",
        json={"disabled": True, "role": "merchant"},
        headers={**service_headers, "X-Actor-Id": admin_id, "X-Forwarded-For": "192.0.2.7"},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["disabled"], r.json()["role"]) == (True, "merchant")

    again = await client.post(
        "/auth/signin", json={"email": account.email, "password": account.password}
    )
    assert again.status_code == 403 and again.json()["code"] == "account_disabled"
    wrong = await client.post(
        "/auth/signin", json={"email": account.email, "password": "not-the-password-1"}
    )
    assert wrong.status_code == 401  # no hint that the account exists but is disabled
    refreshed = await client.post("/auth/refresh", json={"refresh_token": refresh_token})
    assert refreshed.status_code == 401  # the disable revoked the session

    [disabled] = await audit_events("user.disabled", account.id)
    assert disabled["actor_id"] == admin_id and disabled["actor_role"] == "admin"
    assert disabled["source_ip"] == "192.0.2.7"
    assert disabled["details"]["sessions_revoked"] >= 2
    [role] = await audit_events("user.role_changed", account.id)
    assert role["details"] == {"from": "customer", "to": "merchant"}
    failed = await audit_events("auth.signin_failed", account.id)
    assert {e["details"]["reason"] for e in failed} >= {"account_disabled"}


async def test_a_disabled_users_refresh_is_403(
    client: httpx.AsyncClient,
    new_account: Callable[..., Awaitable[Any]],
    service_headers: dict[str, str],
    app: Any,
) -> None:
    """Disabling revokes sessions; a session that slipped past (re-enabled and disabled in
    the window) still meets the disabled check on refresh."""
    from sqlalchemy import update

    from user_service.store.tables import User

    account = await new_account()
    token = (
        await client.post(
            "/auth/signin", json={"email": account.email, "password": account.password}
        )
    ).json()["refresh_token"]
    async with app.state.sessionmaker() as session, session.begin():
        # Set the flag directly, bypassing the revocation administer_user also does.
        await session.execute(update(User).where(User.id == account.id).values(disabled=True))
    r = await client.post("/auth/refresh", json={"refresh_token": token})
    assert r.status_code == 403 and r.json()["code"] == "account_disabled"


async def test_internal_update_validates_its_body(
    client: httpx.AsyncClient,
    new_account: Callable[..., Awaitable[Any]],
    service_headers: dict[str, str],
) -> None:
    account = await new_account()
    for body in ({"role": "superuser"}, {"disabled": "yes"}, {"email": "x@example.com"}):
        r = await client.patch(f"/internal/users/{account.id}", json=body, headers=service_headers)
        assert r.status_code == 422, body
    missing = await client.patch(
        "/internal/users/6f0b1d55-7c7e-4d7a-9a9e-3f3e2f1d0c0b",
        json={"disabled": True},
        headers=service_headers,
    )
    assert missing.status_code == 404 and missing.json()["code"] == "user_not_found"
