"""API keys: shown once, stored as an HMAC, resolved only for the gateway, revoked for good."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr, ValidationError

from paygate_common.auth import JWKSCache, parse_api_key, verify_access_token
from paygate_common.auth.api_keys import _checksum
from user_service.settings import Settings


async def create_key(
    client: httpx.AsyncClient, account: Any, name: str = "shop backend", **extra: Any
) -> dict[str, Any]:
    r = await client.post("/api-keys", json={"name": name, **extra}, headers=account.headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def resolve(client: httpx.AsyncClient, key: str, headers: dict[str, str]) -> httpx.Response:
    return await client.post("/internal/api-keys/resolve", json={"key": key}, headers=headers)


async def test_a_key_is_shown_once_and_listed_without_its_secret(
    client: httpx.AsyncClient,
    new_account: Callable[..., Awaitable[Any]],
    app: FastAPI,
    audit_events: Any,
) -> None:
    account = await new_account()
    created = await create_key(client, account)
    assert set(created) == {"id", "name", "prefix", "key", "scopes", "created_at", "last_used_at"}
    key = created["key"]
    assert key.startswith("pgk_test_") and len(key) == 59
    assert key.startswith(created["prefix"]) and len(created["prefix"]) == len("pgk_test_") + 12
    assert parse_api_key(key) is not None

    listed = await client.get("/api-keys", headers=account.headers)
    assert listed.status_code == 200
    assert listed.json()["next_cursor"] is None
    [item] = listed.json()["items"]
    assert item["id"] == created["id"] and item["prefix"] == created["prefix"]
    assert "key" not in item and key not in listed.text

    # Nowhere in the users schema: neither the key nor its secret part (only an HMAC of it).
    dsn = app.state.settings.database_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'users'"
        )
        for t in tables:
            dump = str(await conn.fetch(f'SELECT * FROM users."{t["table_name"]}"'))
            assert key not in dump and key[21:53] not in dump, t["table_name"]
        stored = await conn.fetchval(
            "SELECT key_hash FROM users.api_keys WHERE id = $1", created["id"]
        )
        assert len(stored) == 64
    finally:
        await conn.close()
    [event] = await audit_events("api_key.created", created["id"])
    assert event["actor_id"] == str(account.id)
    assert event["details"]["prefix"] == created["prefix"]


async def test_the_gateway_resolves_a_key_into_its_owners_short_token(
    client: httpx.AsyncClient,
    new_account: Callable[..., Awaitable[Any]],
    app: FastAPI,
    gateway_headers: dict[str, str],
) -> None:
    account = await new_account()
    created = await create_key(client, account, scopes=["payments:write", "orders:read"])
    r = await resolve(client, created["key"], gateway_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["api_key_id"] == created["id"] and body["user_id"] == str(account.id)
    assert body["scopes"] == ["orders:read", "payments:write"]
    assert body["expires_in"] == 60
    settings = app.state.settings
    doc = (await client.get("/.well-known/jwks.json")).json()
    principal = await verify_access_token(
        body["access_token"],
        jwks=JWKSCache.from_jwks(doc),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
    assert principal.user_id == account.id and principal.role == "customer"
    assert str(principal.api_key_id) == created["id"]
    assert principal.scopes == {"orders:read", "payments:write"}
    listed = (await client.get("/api-keys", headers=account.headers)).json()["items"]
    assert listed[0]["last_used_at"] is not None


async def test_only_the_gateway_may_resolve_keys(
    client: httpx.AsyncClient,
    new_account: Callable[..., Awaitable[Any]],
    service_headers: dict[str, str],
) -> None:
    account = await new_account()
    key = (await create_key(client, account))["key"]
    other_service = await resolve(client, key, service_headers)
    assert other_service.status_code == 403
    assert other_service.json()["code"] == "service_not_allowed"
    no_token = await resolve(client, key, {})
    assert no_token.status_code == 401
    assert no_token.json()["code"] == "service_token_invalid"


async def test_forged_revoked_and_disabled_owners_keys_do_not_resolve(
    client: httpx.AsyncClient,
    new_account: Callable[..., Awaitable[Any]],
    gateway_headers: dict[str, str],
    service_headers: dict[str, str],
    audit_events: Any,
) -> None:
    account = await new_account()
    created = await create_key(client, account)
    key = created["key"]
    # Same lookup id, another secret, a correct checksum: only the HMAC can tell.
    head = key[:21] + ("a" if key[21] != "a" else "b") + key[22:-6]
    forged = head + _checksum(head)
    assert parse_api_key(forged) is not None
    for bad in (forged, key[:-1], "pgk_eyJhbGciOiJSUzI1NiJ9.e30.sig", "pgk_live_" + key[9:]):
        r = await resolve(client, bad, gateway_headers)
        assert r.status_code == 401, bad
        assert r.json()["code"] == "api_key_invalid"
    assert (await resolve(client, key, gateway_headers)).status_code == 200

    disable = await client.patch(
        f"/internal/users/{account.id}", json={"disabled": True}, headers=service_headers
    )
    assert disable.status_code == 200
    assert (await resolve(client, key, gateway_headers)).status_code == 401
    enable = await client.patch(
        f"/internal/users/{account.id}", json={"disabled": False}, headers=service_headers
    )
    assert enable.status_code == 200
    assert (await resolve(client, key, gateway_headers)).status_code == 200

    # The owner's access token was issued before the disable and still lives (<= 15 min).
    revoked = await client.delete(f"/api-keys/{created['id']}", headers=account.headers)
    assert revoked.status_code == 204
    assert (await resolve(client, key, gateway_headers)).status_code == 401
    assert (await client.get("/api-keys", headers=account.headers)).json()["items"] == []
    again = await client.delete(f"/api-keys/{created['id']}", headers=account.headers)
    assert again.status_code == 404 and again.json()["code"] == "api_key_not_found"
    [event] = await audit_events("api_key.revoked", created["id"])
    assert event["actor_id"] == str(account.id) and key not in str(event)


async def test_a_key_cannot_manage_keys_or_sessions(
    client: httpx.AsyncClient,
    new_account: Callable[..., Awaitable[Any]],
    gateway_headers: dict[str, str],
) -> None:
    account = await new_account()
    created = await create_key(client, account)
    token = (await resolve(client, created["key"], gateway_headers)).json()["access_token"]
    as_key = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/users/me", headers=as_key)).status_code == 200
    for method, path in (
        ("POST", "/api-keys"),
        ("GET", "/api-keys"),
        ("DELETE", f"/api-keys/{created['id']}"),
        ("GET", "/users/me/sessions"),
    ):
        r = await client.request(method, path, json={"name": "more"}, headers=as_key)
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["code"] == "session_required"


async def test_other_users_keys_are_not_found_and_lists_page(
    client: httpx.AsyncClient, new_account: Callable[..., Awaitable[Any]]
) -> None:
    owner, stranger = await new_account(), await new_account()
    ids = [(await create_key(client, owner, name=f"k{i}"))["id"] for i in range(3)]
    r = await client.delete(f"/api-keys/{ids[0]}", headers=stranger.headers)
    assert r.status_code == 404
    assert (await client.get("/api-keys", headers=stranger.headers)).json()["items"] == []
    first = (await client.get("/api-keys", params={"limit": 2}, headers=owner.headers)).json()
    assert [k["id"] for k in first["items"]] == ids[::-1][:2]
    rest = await client.get(
        "/api-keys", params={"cursor": first["next_cursor"]}, headers=owner.headers
    )
    assert [k["id"] for k in rest.json()["items"]] == [ids[0]]
    bad = await client.get("/api-keys", params={"cursor": "nope"}, headers=owner.headers)
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_cursor"


@pytest.mark.parametrize(
    "body",
    [{}, {"name": ""}, {"name": "x", "scopes": ["payments:everything"]}, {"name": "x", "extra": 1}],
    ids=["no-name", "empty-name", "unknown-scope", "unknown-field"],
)
async def test_bad_key_requests_are_422(
    client: httpx.AsyncClient, new_account: Callable[..., Awaitable[Any]], body: dict[str, Any]
) -> None:
    account = await new_account()
    r = await client.post("/api-keys", json=body, headers=account.headers)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"


def test_production_refuses_the_development_hmac_secret() -> None:
    with pytest.raises(ValidationError, match="api_key_hmac_secret"):
        Settings(
            environment="production",
            service_token_secret=SecretStr("a-real-production-secret-0123456789abcdef"),
            stripe_api_key=SecretStr("sk_live_real"),
            jwt_private_key=SecretStr("unused"),
        )
