"""Auth: RS256 access tokens checked against a real JWKS endpoint, service tokens, FastAPI deps."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import socket
import stat
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from paygate_common.auth import (
    AdminPrincipal,
    CurrentPrincipal,
    JWKSCache,
    JWKSUnavailable,
    Principal,
    ServiceCaller,
    ServiceTokenInvalid,
    SigningKey,
    TokenExpired,
    TokenInvalid,
    TokenMissing,
    VerifiedTokenCache,
    issue_access_token,
    issue_service_token,
    jwk_thumbprint,
    jwks_document,
    load_or_create_signing_key,
    service_audience,
    token_kid,
    verify_access_token,
    verify_service_token,
    verify_with_key,
)
from paygate_common.errors import PROBLEM_CONTENT_TYPE, install_error_handlers
from paygate_common.settings import ServiceSettings
from paygate_devstack.asgi import serve_asgi as serve

ISSUER = "paygate-test"
AUDIENCE = "paygate-api-test"
SECRET = "test-service-token-secret-that-is-long-enough-0123456789"


class UserServiceSettings(ServiceSettings):
    service_name: ClassVar[str] = "user-service"


class GatewaySettings(ServiceSettings):
    service_name: ClassVar[str] = "gateway"


class PaymentServiceSettings(ServiceSettings):
    service_name: ClassVar[str] = "payment-service"


def settings_for(cls: type[ServiceSettings], **overrides: Any) -> ServiceSettings:
    values: dict[str, Any] = {
        "jwt_issuer": ISSUER,
        "jwt_audience": AUDIENCE,
        "service_token_secret": SECRET,
        **overrides,
    }
    return cls(**values)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def craft(header: dict[str, Any], claims: dict[str, Any], sign: Any = None) -> str:
    """A JWT assembled by hand, for the forgeries PyJWT refuses to produce."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    signature = sign(signing_input.encode()) if sign else b""
    return f"{signing_input}.{b64url(signature)}"


def claims_for(user_id: uuid.UUID | None = None, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(user_id or uuid.uuid4()),
        "role": "customer",
        "iat": now,
        "exp": now + 300,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


# --- a real JWKS endpoint ------------------------------------------------------------------------


class JWKSServer:
    """A stand-in for user-service's `/.well-known/jwks.json` that counts its requests."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.requests = 0
        self.fail = False

        async def jwks(request: Request) -> JSONResponse:
            self.requests += 1
            if self.fail:
                return JSONResponse({"error": "down"}, status_code=503)
            return JSONResponse(jwks_document(self.keys))

        self.app = Starlette(routes=[Route("/.well-known/jwks.json", jwks)])

    def cache(self, **kwargs: Any) -> JWKSCache:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://user-service"
        )
        return JWKSCache("http://user-service/.well-known/jwks.json", http_client=client, **kwargs)


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="module")
def other_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def jwks_server(key: SigningKey) -> JWKSServer:
    return JWKSServer(key)


def access_token(key: SigningKey, role: str = "customer", **kwargs: Any) -> str:
    token, _ = issue_access_token(
        key,
        user_id=kwargs.pop("user_id", uuid.uuid4()),
        role=role,  # type: ignore[arg-type]
        email=kwargs.pop("email", "payer@example.com"),
        issuer=kwargs.pop("issuer", ISSUER),
        audience=kwargs.pop("audience", AUDIENCE),
        ttl_seconds=kwargs.pop("ttl_seconds", 300),
        **kwargs,
    )
    return token


async def verify(token: str, cache: JWKSCache) -> Principal:
    return await verify_access_token(token, jwks=cache, issuer=ISSUER, audience=AUDIENCE)


# --- access tokens -------------------------------------------------------------------------------


async def test_valid_token_verifies_against_the_fetched_jwks(
    key: SigningKey, jwks_server: JWKSServer
) -> None:
    user_id = uuid.uuid4()
    token, expires_in = issue_access_token(
        key,
        user_id=user_id,
        role="admin",
        email="ops@example.com",
        issuer=ISSUER,
        audience=AUDIENCE,
        ttl_seconds=900,
    )
    principal = await verify(token, jwks_server.cache())
    assert expires_in == 900
    assert principal.user_id == user_id
    assert principal.role == "admin" and principal.is_admin
    assert principal.email == "ops@example.com"
    assert abs(principal.token_expires_at - (time.time() + 900)) < 5
    assert jwks_server.requests == 1
    with pytest.raises(Exception, match="frozen"):
        principal.role = "customer"  # type: ignore[misc]


async def test_expired_token_is_rejected_as_token_expired(
    key: SigningKey, jwks_server: JWKSServer
) -> None:
    token = key.sign(claims_for(exp=int(time.time()) - 60))
    with pytest.raises(TokenExpired) as exc:
        await verify(token, jwks_server.cache())
    assert exc.value.status_code == 401
    assert exc.value.code == "token_expired"
    assert token not in exc.value.detail


async def test_token_just_past_exp_is_accepted_within_the_leeway(
    key: SigningKey, jwks_server: JWKSServer
) -> None:
    token = key.sign(claims_for(exp=int(time.time()) - 3))
    assert (await verify(token, jwks_server.cache())).role == "customer"


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "some-other-api"},
        {"iss": "evil-issuer"},
        {"role": "superuser"},
        {"sub": "not-a-uuid"},
        {"role": None},
        {"sub": None},
        {"exp": None},
        {"aud": None},
        {"iss": None},
    ],
    ids=[
        "wrong-aud",
        "wrong-iss",
        "unknown-role",
        "sub-not-uuid",
        "no-role",
        "no-sub",
        "no-exp",
        "no-aud",
        "no-iss",
    ],
)
async def test_token_with_bad_or_missing_claims_is_invalid(
    key: SigningKey, jwks_server: JWKSServer, overrides: dict[str, Any]
) -> None:
    claims = claims_for(**{k: v for k, v in overrides.items() if v is not None})
    for name, value in overrides.items():
        if value is None:
            claims.pop(name)
    with pytest.raises(TokenInvalid) as exc:
        await verify(key.sign(claims), jwks_server.cache())
    assert exc.value.status_code == 401
    assert exc.value.code == "token_invalid"


async def test_alg_none_is_rejected(key: SigningKey, jwks_server: JWKSServer) -> None:
    token = craft({"alg": "none", "typ": "JWT", "kid": key.kid}, claims_for(role="admin"))
    with pytest.raises(TokenInvalid):
        await verify(token, jwks_server.cache())


async def test_hs256_signed_with_the_public_key_is_rejected(
    key: SigningKey, jwks_server: JWKSServer
) -> None:
    # The classic key-confusion forgery: anyone can read the public key from the JWKS.
    public_pem = key.public_pem()
    token = craft(
        {"alg": "HS256", "typ": "JWT", "kid": key.kid},
        claims_for(role="admin"),
        sign=lambda data: hmac.new(public_pem, data, hashlib.sha256).digest(),
    )
    with pytest.raises(TokenInvalid):
        await verify(token, jwks_server.cache())
    # The same forgery must also fail on the synchronous path, even given the raw public key.
    with pytest.raises(TokenInvalid):
        verify_with_key(token, key.public_key, issuer=ISSUER, audience=AUDIENCE)


async def test_tampered_signature_and_payload_are_rejected(
    key: SigningKey, jwks_server: JWKSServer
) -> None:
    token = access_token(key)
    head, payload, sig = token.split(".")
    flipped_sig = sig[:-4] + ("AAAA" if sig[-4:] != "AAAA" else "BBBB")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "admin"
    escalated = f"{head}.{b64url(json.dumps(claims).encode())}.{sig}"
    cache = jwks_server.cache()
    for forged in (f"{head}.{payload}.{flipped_sig}", escalated):
        with pytest.raises(TokenInvalid):
            await verify(forged, cache)


async def test_token_signed_by_an_unpublished_key_is_rejected(
    other_key: SigningKey, jwks_server: JWKSServer
) -> None:
    with pytest.raises(TokenInvalid):
        await verify(access_token(other_key), jwks_server.cache())


async def test_missing_kid_and_garbage_tokens_are_invalid(
    key: SigningKey, jwks_server: JWKSServer
) -> None:
    no_kid = craft(
        {"alg": "RS256", "typ": "JWT"},
        claims_for(),
        sign=lambda data: b"x" * 256,
    )
    cache = jwks_server.cache()
    for token in (no_kid, "not-a-jwt", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30"):
        with pytest.raises(TokenInvalid):
            await verify(token, cache)
    with pytest.raises(TokenMissing):
        await verify("", cache)
    assert jwks_server.requests == 0


async def test_unknown_kid_triggers_exactly_one_refetch_even_under_a_flood(
    key: SigningKey, other_key: SigningKey, jwks_server: JWKSServer
) -> None:
    cache = jwks_server.cache(min_refetch_interval=0.3)
    await verify(access_token(key), cache)
    assert jwks_server.requests == 1
    await asyncio.sleep(0.35)

    bogus = [
        craft({"alg": "RS256", "kid": f"bogus-{i}"}, claims_for(), sign=lambda d: b"x" * 256)
        for i in range(50)
    ]
    results = await asyncio.gather(*(verify(t, cache) for t in bogus), return_exceptions=True)
    assert all(isinstance(r, TokenInvalid) for r in results)
    assert jwks_server.requests == 2, "50 unknown kids must cost one JWKS request, not 50"

    # Inside the rate-limit window even a genuinely new key is not fetched...
    jwks_server.keys.append(other_key)
    new_token = access_token(other_key)
    with pytest.raises(TokenInvalid):
        await verify(new_token, cache)
    assert jwks_server.requests == 2
    # ...the known key keeps verifying without any request...
    await verify(access_token(key), cache)
    assert jwks_server.requests == 2
    # ...and once the window has passed the new kid is fetched, once.
    await asyncio.sleep(0.35)
    assert (await verify(new_token, cache)).role == "customer"
    assert (await verify(new_token, cache)).role == "customer"
    assert jwks_server.requests == 3


async def test_key_rotation_new_kid_is_fetched_and_retired_key_ages_out(
    key: SigningKey, other_key: SigningKey, jwks_server: JWKSServer
) -> None:
    cache = jwks_server.cache(ttl_seconds=0.3, min_refetch_interval=0)
    old_token = access_token(key)
    await verify(old_token, cache)

    # user-service publishes the new key next to the old one and signs with the new one.
    jwks_server.keys = [other_key, key]
    new_principal = await verify(access_token(other_key), cache)
    assert new_principal.role == "customer"
    assert jwks_server.requests == 2
    await verify(old_token, cache)
    assert jwks_server.requests == 2

    # The old key is withdrawn; once the cache is older than its TTL the old token fails.
    jwks_server.keys = [other_key]
    await asyncio.sleep(0.35)
    with pytest.raises(TokenInvalid):
        await verify(old_token, cache)
    await verify(access_token(other_key), cache)


async def test_known_keys_keep_working_when_the_jwks_endpoint_fails(
    key: SigningKey, jwks_server: JWKSServer
) -> None:
    cache = jwks_server.cache(ttl_seconds=0.1, min_refetch_interval=0)
    token = access_token(key)
    await verify(token, cache)
    jwks_server.fail = True
    await asyncio.sleep(0.15)
    assert (await verify(token, cache)).role == "customer"
    assert jwks_server.requests == 2


async def test_unreachable_jwks_with_no_known_keys_is_503(key: SigningKey) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cache = JWKSCache(f"http://127.0.0.1:{port}/.well-known/jwks.json", timeout=0.5)
    with pytest.raises(JWKSUnavailable) as exc:
        await verify(access_token(key), cache)
    assert exc.value.status_code == 503
    await cache.aclose()


async def test_static_cache_verifies_without_http(key: SigningKey) -> None:
    cache = JWKSCache.from_signing_keys([key])
    assert (await verify(access_token(key, role="admin"), cache)).is_admin
    also = JWKSCache.from_jwks(jwks_document([key]))
    assert (await verify(access_token(key), also)).role == "customer"
    assert also.get_key_nowait(key.kid) is not None
    assert also.get_key_nowait("nope") is None


def test_sync_fast_path_with_a_resolved_key(key: SigningKey) -> None:
    token = access_token(key)
    assert token_kid(token) == key.kid
    resolved = JWKSCache.from_signing_keys([key]).get_key_nowait(token_kid(token))
    principal = verify_with_key(token, resolved, issuer=ISSUER, audience=AUDIENCE)
    assert principal.role == "customer"
    with pytest.raises(TokenInvalid):
        verify_with_key(token, resolved, issuer=ISSUER, audience="other")


def test_verified_token_cache_expires_entries_at_exp_and_evicts_lru() -> None:
    now = [1_000.0]
    cache = VerifiedTokenCache(maxsize=2, clock=lambda: now[0])

    def principal(exp: int) -> Principal:
        return Principal(user_id=uuid.uuid4(), role="customer", token_expires_at=exp)

    cache.put("a", principal(1_010))
    cache.put("b", principal(2_000))
    assert cache.get("a") is not None  # "a" is now the most recently used
    cache.put("c", principal(2_000))
    assert cache.get("b") is None, "least recently used entry is evicted"
    assert cache.get("a") is not None and cache.get("c") is not None
    now[0] = 1_010.0
    assert cache.get("a") is None, "an entry is dropped at its token's exp"
    assert cache.get("c") is not None
    cache.put("expired", principal(900))
    assert cache.get("expired") is None


# --- keys ------------------------------------------------------------------------------------------


def test_kid_is_the_rfc7638_thumbprint() -> None:
    # The example key and thumbprint from RFC 7638, section 3.1.
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_signing_key_is_created_once_with_0600_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "jwt-signing.pem"
    first = load_or_create_signing_key(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    second = load_or_create_signing_key(path)
    assert second.kid == first.kid
    assert [p.name for p in path.parent.iterdir()] == ["jwt-signing.pem"], "no temp files left"
    jwk = first.public_jwk()
    assert jwk["kid"] == jwk_thumbprint(jwk) == first.kid
    assert jwk["alg"] == "RS256" and jwk["use"] == "sig"
    assert "d" not in jwk and "PRIVATE" not in repr(first)


def test_jwks_document_refuses_private_keys(key: SigningKey) -> None:
    doc = jwks_document([key])
    assert doc == {"keys": [key.public_jwk()]}
    with pytest.raises(ValueError, match="private"):
        jwks_document([{**key.public_jwk(), "d": "secret"}])


# --- service tokens --------------------------------------------------------------------------------


def test_service_token_names_the_caller() -> None:
    token = issue_service_token(settings_for(GatewaySettings), audience_service="user")
    assert verify_service_token(token, settings_for(UserServiceSettings)) == "gateway"
    assert service_audience("user-service") == service_audience("user") == "paygate-internal:user"


def test_expired_service_token_is_rejected() -> None:
    token = issue_service_token(
        settings_for(GatewaySettings), audience_service="user", now=int(time.time()) - 300
    )
    with pytest.raises(ServiceTokenInvalid) as exc:
        verify_service_token(token, settings_for(UserServiceSettings))
    assert exc.value.code == "service_token_invalid"


def test_service_token_for_another_service_is_rejected() -> None:
    token = issue_service_token(settings_for(GatewaySettings), audience_service="payment")
    assert verify_service_token(token, settings_for(PaymentServiceSettings)) == "gateway"
    with pytest.raises(ServiceTokenInvalid):
        verify_service_token(token, settings_for(UserServiceSettings))


def test_service_token_with_another_secret_is_rejected() -> None:
    forged = issue_service_token(
        settings_for(GatewaySettings, service_token_secret="x" * 64), audience_service="user"
    )
    with pytest.raises(ServiceTokenInvalid):
        verify_service_token(forged, settings_for(UserServiceSettings))


def test_user_access_token_is_not_a_service_token(key: SigningKey) -> None:
    with pytest.raises(ServiceTokenInvalid):
        verify_service_token(access_token(key), settings_for(UserServiceSettings))
    # Even one whose audience claims to be internal is refused: the algorithm differs.
    internal = key.sign({**claims_for(aud="paygate-internal:user"), "jti": "x", "iss": "gateway"})
    with pytest.raises(ServiceTokenInvalid):
        verify_service_token(internal, settings_for(UserServiceSettings))


async def test_service_token_is_not_an_access_token(key: SigningKey) -> None:
    token = issue_service_token(settings_for(GatewaySettings), audience_service="user")
    with pytest.raises(TokenInvalid):
        await verify(token, JWKSCache.from_signing_keys([key]))
    # A service token given a kid and the right claims still fails: HS256 is not allowed.
    shaped = craft(
        {"alg": "HS256", "kid": key.kid},
        {**claims_for(), "jti": "x"},
        sign=lambda d: hmac.new(SECRET.encode(), d, hashlib.sha256).digest(),
    )
    with pytest.raises(TokenInvalid):
        await verify(shaped, JWKSCache.from_signing_keys([key]))


# --- FastAPI dependencies -------------------------------------------------------------------------


def protected_app(settings: ServiceSettings, jwks: JWKSCache | None) -> FastAPI:
    app = FastAPI()
    app.state.settings = settings
    if jwks is not None:
        app.state.jwks = jwks
    install_error_handlers(app)

    @app.get("/me")
    async def me(principal: CurrentPrincipal) -> dict[str, str]:
        return {"user_id": str(principal.user_id), "role": principal.role}

    @app.get("/admin")
    async def admin(principal: AdminPrincipal) -> dict[str, str]:
        return {"role": principal.role}

    @app.get("/internal/ping")
    async def internal(caller: ServiceCaller) -> dict[str, str]:
        return {"caller": caller}

    return app


@pytest.fixture
async def api(key: SigningKey) -> AsyncIterator[httpx.AsyncClient]:
    app = protected_app(settings_for(UserServiceSettings), JWKSCache.from_signing_keys([key]))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://svc"
    ) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_current_principal_accepts_a_valid_bearer_token(
    api: httpx.AsyncClient, key: SigningKey
) -> None:
    user_id = uuid.uuid4()
    response = await api.get("/me", headers=bearer(access_token(key, user_id=user_id)))
    assert response.status_code == 200
    assert response.json() == {"user_id": str(user_id), "role": "customer"}


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "token_missing"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "token_missing"),
        ({"Authorization": "Bearer not.a.jwt"}, "token_invalid"),
    ],
    ids=["no-header", "basic-auth", "garbage"],
)
async def test_missing_or_bad_token_is_401_problem_json(
    api: httpx.AsyncClient, headers: dict[str, str], code: str
) -> None:
    response = await api.get("/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["code"] == code


async def test_expired_token_is_401_token_expired(api: httpx.AsyncClient, key: SigningKey) -> None:
    token = key.sign(claims_for(exp=int(time.time()) - 60))
    response = await api.get("/me", headers=bearer(token))
    assert response.status_code == 401
    body = response.json()
    assert body["code"] == "token_expired"
    assert token not in response.text


async def test_admin_principal_is_403_for_customers_and_200_for_admins(
    api: httpx.AsyncClient, key: SigningKey
) -> None:
    response = await api.get("/admin", headers=bearer(access_token(key)))
    assert response.status_code == 403
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert response.json()["code"] == "admin_required"
    response = await api.get("/admin", headers=bearer(access_token(key, role="admin")))
    assert response.status_code == 200
    assert (await api.get("/admin")).status_code == 401


async def test_service_caller_dependency(api: httpx.AsyncClient, key: SigningKey) -> None:
    service_token = issue_service_token(settings_for(GatewaySettings), audience_service="user")
    response = await api.get("/internal/ping", headers=bearer(service_token))
    assert response.status_code == 200
    assert response.json() == {"caller": "gateway"}

    for headers in ({}, bearer(access_token(key, role="admin"))):
        response = await api.get("/internal/ping", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
        assert response.json()["code"] == "service_token_invalid"

    # And the service token opens no user endpoint.
    response = await api.get("/me", headers=bearer(service_token))
    assert response.status_code == 401
    assert response.json()["code"] == "token_invalid"


async def test_openapi_declares_the_oauth2_password_scheme(api: httpx.AsyncClient) -> None:
    schema = (await api.get("/openapi.json")).json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["OAuth2PasswordBearer"]["flows"]["password"]["tokenUrl"] == "/auth/token"
    assert {"OAuth2PasswordBearer": []} in schema["paths"]["/me"]["get"]["security"]


# --- the lazily created JWKS cache, against a real HTTP server ----------------------------------


async def test_dependency_creates_the_jwks_cache_from_settings(key: SigningKey) -> None:
    jwks = JWKSServer(key)
    async with serve(jwks.app) as url:
        settings = settings_for(UserServiceSettings, jwks_url=f"{url}/.well-known/jwks.json")
        app = protected_app(settings, None)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://svc"
        ) as client:
            for _ in range(3):
                response = await client.get("/me", headers=bearer(access_token(key)))
                assert response.status_code == 200
        assert jwks.requests == 1
        assert isinstance(app.state.jwks, JWKSCache)
        await app.state.jwks.aclose()


@pytest.fixture(autouse=True)
def _no_token_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    yield
    for record in caplog.records:
        assert "eyJ" not in record.getMessage(), "a token reached a log line"
