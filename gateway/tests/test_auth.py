"""Auth at the edge: a valid RS256 token from user-service's JWKS, or an API key it resolves."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import ClassVar

import httpx
import pytest
from gateway_support import AUDIENCE, ISSUER, Upstreams, UpstreamState, free_port, unsigned_token
from prometheus_client import REGISTRY

from paygate_common.auth import (
    SigningKey,
    generate_api_key,
    issue_access_token,
    verify_service_token,
    verify_with_key,
)
from paygate_common.settings import ServiceSettings
from paygate_devstack.events_testing import wait_for


class UserServiceSettings(ServiceSettings):
    """How user-service checks the gateway's service token (the default development secret)."""

    service_name: ClassVar[str] = "user-service"


def _claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(uuid.uuid4()),
        "role": "admin",
        "iat": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return claims


async def _get(gateway: str, path: str, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=gateway) as client:
        return await client.get(path, headers=headers)


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "token_missing"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "token_missing"),
        ({"Authorization": "Bearer not-a-jwt"}, "token_invalid"),
        ({"Authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln"}, "token_invalid"),
    ],
    ids=["missing", "basic", "garbage", "no-kid"],
)
async def test_missing_and_malformed_tokens_get_401_problem(
    gateway: str, state: UpstreamState, headers: dict[str, str], code: str
) -> None:
    response = await _get(gateway, "/api/v1/orders/o1", headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["code"] == code
    assert sum(state.hits.values()) == 0


async def test_expired_token_gets_401(
    gateway: str, upstreams: Upstreams, state: UpstreamState
) -> None:
    token = upstreams.token(ttl=60, now=int(time.time()) - 3600)
    response = await _get(gateway, "/api/v1/users/me", {"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["code"] == "token_expired"
    assert sum(state.hits.values()) == 0


async def test_alg_none_token_is_refused(
    gateway: str, upstreams: Upstreams, state: UpstreamState
) -> None:
    token = unsigned_token(_claims(), upstreams.signing_key.kid)
    response = await _get(gateway, "/api/v1/orders", {"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["code"] == "token_invalid"
    assert sum(state.hits.values()) == 0


async def test_token_signed_by_another_key_is_refused(gateway: str, state: UpstreamState) -> None:
    stranger = SigningKey.generate()
    token = stranger.sign(_claims())
    response = await _get(gateway, "/api/v1/orders", {"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    # Its unknown kid may refetch the JWKS (at most every 5 s, so only sometimes): no other hit.
    assert sum(n for hit, n in state.hits.items() if hit != "jwks") == 0


async def test_wrong_audience_is_refused(
    gateway: str, upstreams: Upstreams, state: UpstreamState
) -> None:
    token = upstreams.signing_key.sign(_claims(aud="someone-else"))
    response = await _get(gateway, "/api/v1/orders", {"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


async def test_valid_token_passes_and_is_verified_once(
    gateway: str, upstreams: Upstreams, state: UpstreamState
) -> None:
    headers = upstreams.auth()
    for _ in range(3):
        response = await _get(gateway, "/api/v1/orders/o1", headers)
        assert response.status_code == 200
    assert state.hits["order /orders/o1"] == 3


@pytest.mark.parametrize(
    "path", ["/api/v1/auth/signup", "/api/v1/auth/signin", "/api/v1/webhooks/stripe"]
)
async def test_public_routes_need_no_token(gateway: str, state: UpstreamState, path: str) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        response = await client.post(path, json={"email": "a@example.com"})
    assert response.status_code == 200


async def test_unknown_kid_refetches_the_jwks(
    make_gateway,
    upstreams: Upstreams,
    state: UpstreamState,  # type: ignore[no-untyped-def]
) -> None:
    rotated = SigningKey.generate()
    original = dict(state.jwks)
    async with make_gateway(jwks_min_refetch_seconds=0) as url:
        fetched_before = state.hits["jwks"]
        try:
            state.jwks = {"keys": [*original["keys"], rotated.public_jwk()]}
            token, _ = issue_access_token(
                rotated,
                user_id=uuid.uuid4(),
                role="customer",
                email=None,
                issuer=ISSUER,
                audience=AUDIENCE,
                ttl_seconds=300,
            )
            response = await _get(url, "/api/v1/orders/o1", {"Authorization": f"Bearer {token}"})
        finally:
            state.jwks = original
    assert response.status_code == 200
    assert state.hits["jwks"] == fetched_before + 1


# --- API keys: `Bearer pgk_…`, resolved by user-service into its owner's access token --------


def _resolves(outcome: str) -> float:
    labels = {"outcome": outcome}
    return REGISTRY.get_sample_value("paygate_gateway_api_key_resolves_total", labels) or 0.0


def _new_key(state: UpstreamState, **entry: object) -> tuple[str, dict[str, object]]:
    key, _ = generate_api_key("test")
    record: dict[str, object] = {"id": str(uuid.uuid4()), "user_id": str(uuid.uuid4()), **entry}
    state.api_keys[key] = record
    return key, record


async def test_an_api_key_reaches_upstream_as_its_owners_access_token(
    gateway: str, upstreams: Upstreams, state: UpstreamState
) -> None:
    key, record = _new_key(state)
    headers = {"Authorization": f"Bearer {key}"}
    for _ in range(3):
        response = await _get(gateway, "/api/v1/orders/o1", headers)
        assert response.status_code == 200, response.text
    forwarded = response.json()["headers"]["authorization"]
    assert key not in json.dumps(response.json())
    token = forwarded.removeprefix("Bearer ")
    principal = verify_with_key(
        token, upstreams.signing_key.public_key, issuer=ISSUER, audience=AUDIENCE
    )
    assert str(principal.user_id) == record["user_id"]
    assert str(principal.api_key_id) == record["id"]
    assert principal.role == "merchant"
    # Resolved once, then served from the cache; with a service token addressed to user-service.
    assert state.hits["resolve"] == 1
    service_token = state.resolve_headers[0]["authorization"].removeprefix("Bearer ")
    assert verify_service_token(service_token, UserServiceSettings()) == "gateway"


async def test_a_revoked_key_is_refused_within_five_seconds(
    gateway: str, state: UpstreamState
) -> None:
    key, record = _new_key(state)
    headers = {"Authorization": f"Bearer {key}"}
    assert (await _get(gateway, "/api/v1/orders/o1", headers)).status_code == 200
    record["revoked"] = True
    revoked_at = time.monotonic()

    async def refused() -> httpx.Response | None:
        response = await _get(gateway, "/api/v1/orders/o1", headers)
        return response if response.status_code == 401 else None

    response = await wait_for(refused, timeout=10, interval=0.1)
    assert time.monotonic() - revoked_at < 5.0
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "api_key_invalid"


@pytest.mark.parametrize("forgery", ["jwt-shaped", "one-char-changed", "wrong-environment"])
async def test_malformed_keys_are_refused_without_asking_user_service(
    gateway: str, upstreams: Upstreams, state: UpstreamState, forgery: str
) -> None:
    key, _ = _new_key(state)
    if forgery == "jwt-shaped":
        bad = "pgk_" + upstreams.token()
    elif forgery == "one-char-changed":
        i = 20
        bad = key[:i] + ("A" if key[i] != "A" else "B") + key[i + 1 :]
    else:
        bad, _ = generate_api_key("live")
        state.api_keys[bad] = {"id": str(uuid.uuid4()), "user_id": str(uuid.uuid4())}
    response = await _get(gateway, "/api/v1/orders/o1", {"Authorization": f"Bearer {bad}"})
    assert response.status_code == 401
    assert response.json()["code"] == "api_key_invalid"
    assert state.hits["resolve"] == 0
    assert sum(v for k, v in state.hits.items() if k.startswith("order")) == 0


async def test_an_unknown_key_is_refused_and_the_refusal_is_cached(
    gateway: str, state: UpstreamState
) -> None:
    key, _ = generate_api_key("test")  # well formed, but user-service never issued it
    refused_before = _resolves("refused")
    for _ in range(3):
        response = await _get(gateway, "/api/v1/orders/o1", {"Authorization": f"Bearer {key}"})
        assert response.status_code == 401
        assert response.json()["code"] == "api_key_invalid"
    assert state.hits["resolve"] == 1
    assert state.hits["order /orders/o1"] == 0
    assert _resolves("refused") == refused_before + 1  # gateways run in this process


async def test_concurrent_first_uses_of_a_key_share_one_resolve(
    gateway: str, state: UpstreamState
) -> None:
    key, _ = _new_key(state)
    async with httpx.AsyncClient(base_url=gateway) as client:
        responses = await asyncio.gather(
            *(
                client.get("/api/v1/orders/o1", headers={"Authorization": f"Bearer {key}"})
                for _ in range(20)
            )
        )
    assert [r.status_code for r in responses] == [200] * 20
    assert state.hits["resolve"] == 1


async def test_a_scoped_key_reaches_only_what_its_scopes_allow(
    gateway: str, state: UpstreamState
) -> None:
    key, _ = _new_key(state, scopes=["payments:read", "orders:write"])
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=gateway) as client:
        read = await client.get("/api/v1/payments/pay_1", headers=headers)
        write = await client.post("/api/v1/payments", json={"amount": 1}, headers=headers)
        order = await client.post("/api/v1/orders", json={"amount": 1}, headers=headers)
        other = await client.get("/api/v1/notifications", headers=headers)
    assert read.status_code == 200, read.text
    assert order.status_code == 200, order.text  # write includes read and write
    for refused in (write, other):
        assert refused.status_code == 403
        assert refused.json()["code"] == "insufficient_scope"
    assert state.hits["payment /payments"] == 0
    assert state.hits["notification /notifications"] == 0


async def test_user_service_down_fails_closed_with_503(
    make_gateway,  # type: ignore[no-untyped-def]
    upstreams: Upstreams,
    state: UpstreamState,
) -> None:
    key, _ = _new_key(state)
    services = {**upstreams.urls, "user": f"http://127.0.0.1:{free_port()}"}
    async with make_gateway(service_urls=services) as url:
        response = await _get(url, "/api/v1/orders/o1", {"Authorization": f"Bearer {key}"})
    assert response.status_code == 503
    assert response.json()["code"] == "api_key_resolution_unavailable"
    assert state.hits["order /orders/o1"] == 0


async def test_a_key_sent_to_a_public_route_is_not_forwarded(
    gateway: str, state: UpstreamState
) -> None:
    key, _ = _new_key(state)
    async with httpx.AsyncClient(base_url=gateway) as client:
        response = await client.post(
            "/api/v1/auth/signin", json={"email": "a@example.com"}, headers=bearer_key(key)
        )
    assert response.status_code == 200
    assert "authorization" not in response.json()["headers"]
    assert state.hits["resolve"] == 0


def bearer_key(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
