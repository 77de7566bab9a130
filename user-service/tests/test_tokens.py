"""Access tokens: RS256 with a published key, and every forgery refused on `/users/me`."""

from __future__ import annotations

import base64
import json
import os
import stat
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI
from pydantic import SecretStr, ValidationError

from paygate_common.auth import JWKSCache, SigningKey, verify_access_token
from user_service.domain.tokens import load_signing_key
from user_service.settings import Settings


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_jwks_publishes_the_key_and_tokens_verify_against_it(
    client: httpx.AsyncClient, new_account: Callable[..., Awaitable[Any]], app: FastAPI
) -> None:
    account = await new_account()
    r = await client.get("/.well-known/jwks.json")
    assert r.status_code == 200
    doc = r.json()
    assert len(doc["keys"]) == 1
    jwk = doc["keys"][0]
    assert set(jwk) == {"kid", "kty", "alg", "use", "n", "e"}
    assert (jwk["kty"], jwk["alg"], jwk["use"]) == ("RSA", "RS256", "sig")

    settings = app.state.settings
    principal = await verify_access_token(
        account.token,
        jwks=JWKSCache.from_jwks(doc),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
    assert principal.user_id == account.id
    assert principal.role == "customer"
    assert principal.email == account.email

    header = jwt.get_unverified_header(account.token)
    assert header["alg"] == "RS256"
    assert header["kid"] == jwk["kid"]
    claims = jwt.decode(account.token, options={"verify_signature": False})
    assert {"sub", "role", "email", "iss", "aud", "iat", "exp"} <= set(claims)
    assert claims["exp"] - claims["iat"] == settings.access_token_ttl_seconds


def admin_claims(app: FastAPI, account: Any, **changes: Any) -> dict[str, Any]:
    """The claims of a genuine-looking admin token for `account`, with `changes` applied."""
    now = int(time.time())
    claims = {
        "iss": app.state.settings.jwt_issuer,
        "aud": app.state.settings.jwt_audience,
        "sub": str(account.id),
        "role": "admin",
        "email": account.email,
        "iat": now,
        "exp": now + 600,
    }
    return {**claims, **changes}


def forge(app: FastAPI, account: Any, **changes: Any) -> str:
    key: SigningKey = app.state.signing_key
    return key.sign(admin_claims(app, account, **changes))


@pytest.mark.parametrize(
    "case",
    [
        "expired",
        "wrong-aud",
        "wrong-iss",
        "alg-none",
        "hs256-with-public-key",
        "unknown-key",
        "tampered",
        "garbage",
        "missing",
    ],
)
async def test_forged_or_stale_tokens_get_401(
    case: str,
    client: httpx.AsyncClient,
    new_account: Callable[..., Awaitable[Any]],
    app: FastAPI,
) -> None:
    account = await new_account()
    key: SigningKey = app.state.signing_key
    now = int(time.time())
    claims = admin_claims(app, account)
    if case == "expired":
        token = forge(app, account, iat=now - 4000, exp=now - 3600)
    elif case == "wrong-aud":
        token = forge(app, account, aud="someone-else")
    elif case == "wrong-iss":
        token = forge(app, account, iss="evil")
    elif case == "alg-none":
        token = f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': key.kid})}.{b64(claims)}."
    elif case == "hs256-with-public-key":
        public_pem = key.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
        signing_input = f"{b64(header)}.{b64(claims)}".encode()
        import hashlib
        import hmac

        sig = hmac.new(public_pem, signing_input, hashlib.sha256).digest()
        token = signing_input.decode() + "." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode()
    elif case == "unknown-key":
        token = SigningKey.generate().sign(claims)
    elif case == "tampered":
        good = forge(app, account, role="customer")
        head, _, sig = good.split(".")
        token = f"{head}.{b64({**claims, 'role': 'admin'})}.{sig}"
    elif case == "garbage":
        token = "not.a.jwt"
    else:
        token = ""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = await client.get("/users/me", headers=headers)
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == "application/problem+json"
    expected = {"expired": "token_expired", "missing": "token_missing"}.get(case, "token_invalid")
    assert r.json()["code"] == expected
    # The same token works when it is genuine: the test would pass for the wrong reason otherwise.
    ok = await client.get("/users/me", headers={"Authorization": f"Bearer {forge(app, account)}"})
    assert ok.status_code == 200


def test_generated_key_is_private_to_the_owner_and_reused(tmp_path: Path) -> None:
    settings = Settings(environment="test", paygate_state_dir=str(tmp_path))
    first = load_signing_key(settings)
    path = tmp_path / "keys" / "jwt-signing.pem"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_signing_key(settings).kid == first.kid


def test_key_from_settings_wins_and_production_refuses_to_generate(tmp_path: Path) -> None:
    key = SigningKey.generate()
    pem = key.private_pem().decode()
    from_env = Settings(environment="test", jwt_private_key=SecretStr(pem))
    assert load_signing_key(from_env).kid == key.kid
    key_file = tmp_path / "signing.pem"
    key_file.write_text(pem)
    from_file = Settings(environment="test", jwt_private_key_file=str(key_file))
    assert load_signing_key(from_file).kid == key.kid

    with pytest.raises(ValidationError, match="refusing to generate a signing key"):
        Settings(
            environment="production",
            service_token_secret=SecretStr("a-real-production-secret-0123456789abcdef"),
            stripe_api_key=SecretStr("sk_live_real"),
            api_key_hmac_secret=SecretStr("a-real-api-key-hmac-secret-0123456789abcdef"),
        )
    prod = Settings(
        environment="production",
        service_token_secret=SecretStr("a-real-production-secret-0123456789abcdef"),
        stripe_api_key=SecretStr("sk_live_real"),
        api_key_hmac_secret=SecretStr("a-real-api-key-hmac-secret-0123456789abcdef"),
        jwt_private_key_file=str(key_file),
    )
    assert load_signing_key(prod).kid == key.kid
