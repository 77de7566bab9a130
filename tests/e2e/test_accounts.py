"""Accounts end to end through the gateway: API keys, refresh-token rotation, profile validation."""

from __future__ import annotations

import time
import uuid
from typing import Any, ClassVar

import httpx
import pytest
from e2e_support import PASSWORD, Suite, assert_nowhere, sign_up, topic_messages

from paygate_common.auth import issue_service_token
from paygate_common.settings import ServiceSettings
from paygate_devstack.events_testing import wait_for

pytestmark = pytest.mark.e2e

# Every key the tests below create; the last test looks for them everywhere.
ISSUED_KEYS: list[str] = []


class AdminServiceIdentity(ServiceSettings):
    service_name: ClassVar[str] = "admin-service"


async def create_key(
    http: httpx.AsyncClient, headers: dict[str, str], **body: Any
) -> dict[str, Any]:
    r = await http.post("/api-keys", json={"name": "shop backend", **body}, headers=headers)
    assert r.status_code == 201, r.text
    ISSUED_KEYS.append(r.json()["key"])
    return dict(r.json())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_key_lists_its_owners_orders_until_it_is_revoked(
    suite: Suite, http: httpx.AsyncClient
) -> None:
    ann, bob = await sign_up(http), await sign_up(http)
    created = await create_key(http, ann.headers)
    key = created["key"]
    assert key.startswith("pgk_test_")
    mine = (await ann.order(amount=1234)).json()
    theirs = (await bob.order(amount=999)).json()

    listed = await http.get("/orders", headers=bearer(key))
    assert listed.status_code == 200, listed.text
    ids = [o["id"] for o in listed.json()["items"]]
    assert mine["id"] in ids and theirs["id"] not in ids
    # The key acts as Ann everywhere: her profile, and an order it creates is hers.
    me = await http.get("/users/me", headers=bearer(key))
    assert me.json()["email"] == ann.email
    made = await http.post("/orders", json={"amount": 500, "currency": "usd"}, headers=bearer(key))
    assert made.status_code == 201, made.text
    assert (await http.get(f"/orders/{made.json()['id']}", headers=ann.headers)).status_code == 200

    revoked = await http.delete(f"/api-keys/{created['id']}", headers=ann.headers)
    assert revoked.status_code == 204
    started = time.monotonic()

    async def refused() -> httpx.Response | None:
        r = await http.get("/orders", headers=bearer(key))
        return r if r.status_code == 401 else None

    response = await wait_for(refused, timeout=15, interval=0.2)
    assert time.monotonic() - started < 5.0, "the gateway must honour a revocation within 5 s"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "api_key_invalid"
    # Ann's session is untouched.
    assert (await http.get("/orders", headers=ann.headers)).status_code == 200


async def test_forged_and_disabled_keys_are_refused(suite: Suite, http: httpx.AsyncClient) -> None:
    ann = await sign_up(http)
    key = (await create_key(http, ann.headers))["key"]
    assert (await http.get("/orders", headers=bearer(key))).status_code == 200
    one_off = key[:30] + ("Z" if key[30] != "Z" else "Y") + key[31:]
    for bad in ("pgk_" + ann.token, one_off, "pgk_test_" + "A" * 50):
        r = await http.get("/orders", headers=bearer(bad))
        assert r.status_code == 401, bad
        assert r.json()["code"] == "api_key_invalid"

    # admin-service's call: disable Ann; her key stops within the gateway's cache time.
    user = suite.procs["user"]
    me = (await http.get("/users/me", headers=ann.headers)).json()
    caller = AdminServiceIdentity(service_token_secret=user.env["SERVICE_TOKEN_SECRET"])
    async with httpx.AsyncClient(base_url=user.url) as direct:
        r = await direct.patch(
            f"/internal/users/{me['id']}",
            json={"disabled": True},
            headers=bearer(issue_service_token(caller, audience_service="user")),
        )
    assert r.status_code == 200, r.text
    started = time.monotonic()

    async def refused() -> bool:
        return (await http.get("/orders", headers=bearer(key))).status_code == 401

    await wait_for(refused, timeout=15, interval=0.2)
    assert time.monotonic() - started < 5.0
    signin = await http.post("/auth/signin", json={"email": ann.email, "password": PASSWORD})
    assert signin.status_code == 403 and signin.json()["code"] == "account_disabled"


async def test_refresh_rotation_reuse_detection_and_sign_out(
    suite: Suite, http: httpx.AsyncClient
) -> None:
    ann = await sign_up(http)
    pair = (await http.post("/auth/signin", json={"email": ann.email, "password": PASSWORD})).json()
    a = pair["refresh_token"]
    first = await http.post("/auth/refresh", json={"refresh_token": a})
    assert first.status_code == 200, first.text
    b = first.json()["refresh_token"]
    assert (
        await http.get("/users/me", headers=bearer(first.json()["access_token"]))
    ).status_code == 200

    reused = await http.post("/auth/refresh", json={"refresh_token": a})
    assert reused.status_code == 401 and reused.json()["code"] == "refresh_token_reused"
    assert (await http.post("/auth/refresh", json={"refresh_token": b})).status_code == 401

    other = (
        await http.post("/auth/signin", json={"email": ann.email, "password": PASSWORD})
    ).json()
    sessions = await http.get("/users/me/sessions", headers=bearer(other["access_token"]))
    assert sessions.status_code == 200 and sessions.json()["items"]
    out = await http.post("/auth/signout", json={"refresh_token": other["refresh_token"]})
    assert out.status_code == 204
    refused = await http.post("/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert refused.status_code == 401


async def test_profile_patch_validates_through_the_gateway(
    suite: Suite, http: httpx.AsyncClient
) -> None:
    ann = await sign_up(http)
    ok = await http.patch("/users/me", json={"phone": "+4915123456789"}, headers=ann.headers)
    assert ok.status_code == 200 and ok.json()["phone"] == "+4915123456789"
    for body in ({"phone": "0151 2345 6789"}, {"nickname": "annie"}):
        r = await http.patch("/users/me", json=body, headers=ann.headers)
        assert r.status_code == 422, body
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "validation_error"


async def test_no_api_key_reaches_tables_logs_or_kafka(suite: Suite) -> None:
    """Runs last in this module: the keys above were created, used, revoked and audited."""
    assert ISSUED_KEYS
    secrets_ = [k[21:53] for k in ISSUED_KEYS]  # the secret part alone must not appear either
    needles = [*ISSUED_KEYS, *secrets_]
    # The positive signal first: user-service's relay published the keys' audit events.
    audits = await wait_for(
        lambda: topic_messages(suite.kafka.bootstrap, "audit.event", contains="api_key.created")
    )
    assert len(audits) >= len(ISSUED_KEYS)

    await assert_nowhere(
        suite,
        tuple(needles),
        topics=("audit.event", "user.registered", "order.create", "payment.event"),
        written=("audit.event",),
        with_tables=("api_keys",),
    )
    assert uuid.UUID(audits[0]["payload"]["entity_id"])
