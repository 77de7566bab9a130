"""JWT at the edge: protected routes need a valid RS256 token from user-service's JWKS."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from gateway_support import AUDIENCE, ISSUER, Upstreams, UpstreamState, unsigned_token

from paygate_common.auth import SigningKey, issue_access_token


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
    assert sum(state.hits.values()) == 0


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
