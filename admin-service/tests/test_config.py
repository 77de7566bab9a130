"""The configuration store: validated versions, history, rollback, config.changed, admins only."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from paygate_common.auth import issue_service_token
from paygate_common.config import ConfigView, FeesConfig
from paygate_common.events.topics import AUDIT_EVENT, CONFIG_CHANGED
from paygate_devstack.events_testing import read_topic
from paygate_devstack.testkit import TokenMint

FEES = {"rules": [{"basis_points": 250, "fixed": 25}], "refund_returns_fee": False}


async def put(
    client: httpx.AsyncClient, mint: TokenMint, key: str, value: Any, **extra: Any
) -> httpx.Response:
    return await client.put(
        f"/admin/config/{key}", json={"value": value, **extra}, headers=mint.auth(role="admin")
    )


async def test_a_change_is_a_new_version_announced_and_audited(
    admin: tuple[FastAPI, httpx.AsyncClient], token_mint: TokenMint, admin_broker: Any
) -> None:
    _, client = admin
    first = await put(client, token_mint, "fees", FEES, reason="launch pricing")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["version"] == 1 and body["value"]["rules"][0]["basis_points"] == 250
    assert body["reason"] == "launch pricing"

    current = (await client.get("/admin/config/fees", headers=token_mint.auth(role="admin"))).json()
    assert current["version"] == 1 and current["schema"]["title"] == "FeesConfig"

    changes = [
        json.loads(r.value)
        for r in await read_topic(admin_broker.bootstrap, CONFIG_CHANGED, expect=1, within=20)
    ]
    fees_changes = [c for c in changes if c["payload"]["key"] == "fees"]
    assert fees_changes and fees_changes[-1]["payload"]["config_version"] == 1
    audits = [
        json.loads(r.value)["payload"]
        for r in await read_topic(admin_broker.bootstrap, AUDIT_EVENT, expect=1, within=20)
    ]
    assert any(a["action"] == "config.changed" and a["entity_id"] == "fees" for a in audits)


async def test_an_invalid_value_is_refused_with_the_schema_error(
    admin: tuple[FastAPI, httpx.AsyncClient], token_mint: TokenMint
) -> None:
    _, client = admin
    bad = await put(client, token_mint, "fees", {"rules": [{"basis_points": -5}]})
    assert bad.status_code == 422
    problem = bad.json()
    assert problem["code"] == "config_invalid"
    assert any(e["loc"][-1] == "basis_points" for e in problem["errors"])
    providers = await put(
        client, token_mint, "payments.providers", {"enabled": ["stripe"], "default": "paypal"}
    )
    assert providers.status_code == 422 and providers.json()["code"] == "config_invalid"
    unknown = await put(client, token_mint, "no.such.key", {})
    assert unknown.status_code == 404 and unknown.json()["code"] == "config_key_unknown"


async def test_rollback_restores_an_earlier_value_as_a_new_version(
    admin: tuple[FastAPI, httpx.AsyncClient], token_mint: TokenMint
) -> None:
    _, client = admin
    v1 = {"defaults": [{"currency": "usd", "daily": 10_000}]}
    v2 = {"defaults": [{"currency": "usd", "daily": 50_000}]}
    first = (await put(client, token_mint, "limits", v1)).json()
    second = (await put(client, token_mint, "limits", v2)).json()
    assert second["version"] == first["version"] + 1
    back = await client.post(
        "/admin/config/limits/rollback",
        json={"version": first["version"]},
        headers=token_mint.auth(role="admin"),
    )
    assert back.status_code == 200, back.text
    restored = back.json()
    assert restored["version"] == second["version"] + 1
    assert restored["rolled_back_to"] == first["version"]
    assert restored["value"]["defaults"][0]["daily"] == 10_000

    history = (
        await client.get(
            "/admin/config/limits/history",
            params={"limit": 2},
            headers=token_mint.auth(role="admin"),
        )
    ).json()
    assert [i["version"] for i in history["items"]] == [restored["version"], second["version"]]
    older = (
        await client.get(
            "/admin/config/limits/history",
            params={"limit": 2, "cursor": history["next_cursor"]},
            headers=token_mint.auth(role="admin"),
        )
    ).json()
    assert [i["version"] for i in older["items"]] == [first["version"]]
    assert older["next_cursor"] is None
    missing = await client.post(
        "/admin/config/limits/rollback",
        json={"version": 999},
        headers=token_mint.auth(role="admin"),
    )
    assert missing.status_code == 404


async def test_a_version_once_written_cannot_be_edited(
    admin: tuple[FastAPI, httpx.AsyncClient], token_mint: TokenMint
) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    app, client = admin
    await put(
        client, token_mint, "payments.providers", {"enabled": ["stripe"], "default": "stripe"}
    )
    async with app.state.sessionmaker() as session:
        with pytest.raises(DBAPIError, match="insert-only"):
            await session.execute(text("UPDATE config_versions SET reason = 'x'"))
        await session.rollback()
        with pytest.raises(DBAPIError, match="insert-only"):
            await session.execute(text("DELETE FROM config_versions"))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/admin/config"),
        ("GET", "/admin/config/fees"),
        ("PUT", "/admin/config/fees"),
        ("GET", "/admin/config/fees/history"),
        ("POST", "/admin/config/fees/rollback"),
        ("GET", "/admin/health"),
        ("GET", "/admin/users"),
        # a fixed id: parallel workers must collect the same test ids (any user: 403 first)
        ("PATCH", "/admin/users/5f0c6a52-3a0e-4f43-9d39-2f1d3a7c9b10"),
        ("GET", "/admin/analytics"),
    ],
)
async def test_a_customer_or_merchant_gets_403_on_every_admin_route(
    admin: tuple[FastAPI, httpx.AsyncClient], token_mint: TokenMint, method: str, path: str
) -> None:
    _, client = admin
    for role in ("customer", "merchant"):
        r = await client.request(
            method, path, json={"value": FEES, "version": 1}, headers=token_mint.auth(role=role)
        )
        assert r.status_code == 403, (role, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    anonymous = await client.request(method, path)
    assert anonymous.status_code == 401


async def test_services_load_the_current_value_through_the_internal_endpoint(
    admin: tuple[FastAPI, httpx.AsyncClient], token_mint: TokenMint
) -> None:
    app, client = admin
    saved = (
        await put(client, token_mint, "fees", {"rules": [{"basis_points": 111, "fixed": 7}]})
    ).json()
    settings = app.state.settings
    no_token = await client.get("/internal/config/fees")
    assert no_token.status_code == 401

    class _Client:
        async def get(self, path: str) -> httpx.Response:
            token = issue_service_token(settings, audience_service="admin")
            return await client.get(path, headers={"Authorization": f"Bearer {token}"})

    view = ConfigView("fees", FeesConfig)
    await view.load(_Client())
    assert view.version == saved["version"]
    assert view.value.rule_for("stripe", "usd").basis_points == 111
    # a late, older config.changed never wins over what was loaded
    assert not view.apply({"rules": [{"basis_points": 1}]}, saved["version"] - 1)
    assert view.apply({"rules": [{"basis_points": 1}]}, saved["version"] + 1)
    assert view.value.rule_for("paypal", "eur").basis_points == 1
