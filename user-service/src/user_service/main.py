"""user-service's app factory and lifespan: signing key, hasher, throttle, Stripe, outbox relay."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from paygate_common.app import create_service_app
from paygate_common.auth import JWKSCache
from paygate_common.db import unit_of_work
from paygate_common.serve import run_service
from user_service.api import api_keys, auth, internal, payment_methods, users
from user_service.domain import accounts
from user_service.domain.api_keys import ApiKeyHasher
from user_service.domain.errors import EmailTaken
from user_service.domain.passwords import PasswordHasher
from user_service.domain.throttling import SigninThrottle
from user_service.domain.tokens import load_signing_key
from user_service.providers.stripe import StripeCards
from user_service.settings import Settings

log = logging.getLogger("user_service")

OPENAPI_TAGS = [
    {"name": "auth", "description": "Sign-up, sign-in and the keys that verify access tokens"},
    {"name": "users", "description": "The caller's profile and sign-in sessions"},
    {
        "name": "api keys",
        "description": "Secret keys for a merchant's server: `Authorization: Bearer pgk_…`",
    },
    {"name": "payment methods", "description": "Saved Stripe payment methods (tokens only)"},
    {"name": "internal", "description": "Service-to-service; needs a service token; not public"},
    {"name": "ops", "description": "Liveness, readiness"},
]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    signing_key = load_signing_key(settings)
    app.state.signing_key = signing_key
    # Our own tokens are verified from memory: no HTTP round trip to our own JWKS endpoint.
    app.state.jwks = JWKSCache.from_signing_keys([signing_key])

    app.state.api_key_hasher = ApiKeyHasher(settings.api_key_hmac_secret)
    hasher = PasswordHasher()
    await hasher.warm_up()
    app.state.password_hasher = hasher
    app.state.signin_throttle = SigninThrottle(
        app.state.redis,
        max_failures_per_account=settings.signin_max_failures_per_account,
        max_failures_per_ip=settings.signin_max_failures_per_ip,
        window_seconds=settings.signin_failure_window_seconds,
    )
    stripe_cards = StripeCards(settings)
    app.state.stripe_cards = stripe_cards

    if settings.bootstrap_admin_email and settings.bootstrap_admin_password:
        await bootstrap_admin(
            app.state.sessionmaker,
            hasher,
            email=settings.bootstrap_admin_email,
            password=settings.bootstrap_admin_password.get_secret_value(),
            full_name=settings.bootstrap_admin_full_name,
        )
    async with contextlib.aclosing(stripe_cards):
        yield


async def bootstrap_admin(
    sessionmaker: async_sessionmaker[AsyncSession],
    hasher: PasswordHasher,
    *,
    email: str,
    password: str,
    full_name: str,
) -> uuid.UUID:
    """The operator's admin account at startup, in a transaction of its own.

    A second replica starting at the same moment may create the account between our read and
    our insert (`EmailTaken`): the second attempt, in a fresh transaction, finds and updates it.
    """
    for _ in range(2):
        try:
            async with unit_of_work(sessionmaker) as session:
                return await accounts.ensure_bootstrap_admin(
                    session=session,
                    hasher=hasher,
                    email=email,
                    password=password,
                    full_name=full_name,
                )
        except EmailTaken:
            continue
    raise RuntimeError("could not create or update the bootstrap admin")


# Swagger's Authorize offers this next to the password form: paste an API key (or a token).
API_KEY_SCHEME = "ApiKeyOrAccessToken"
API_KEY_SCHEME_DEFINITION = {
    "type": "http",
    "scheme": "bearer",
    "description": "A merchant API key (`pgk_test_…` / `pgk_live_…`) or an access token. Through"
    " the gateway, a key is exchanged for a short-lived access token of its owner.",
}


def _declare_api_key_scheme(app: FastAPI) -> None:
    """Every operation that takes the OAuth2 bearer token also accepts the API-key scheme."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = build()
        spec.setdefault("components", {}).setdefault("securitySchemes", {})[API_KEY_SCHEME] = (
            API_KEY_SCHEME_DEFINITION
        )
        for item in spec.get("paths", {}).values():
            for op in item.values():
                security = op.get("security") if isinstance(op, dict) else None
                if security and {"OAuth2PasswordBearer": []} in security:
                    security.append({API_KEY_SCHEME: []})
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = create_service_app(
        settings,
        title="paygate user-service",
        description=(
            "Accounts, sign-in and RS256 access tokens (public keys at `/.well-known/jwks.json`),"
            " sign-in sessions with rotating refresh tokens, merchant API keys, profiles and saved"
            " payment methods. Click **Authorize** and sign in with your email as the username,"
            " or paste an API key (`pgk_test_…`) under `ApiKeyOrAccessToken`, to try the protected"
            " endpoints."
        ),
        routers=[
            auth.router,
            users.router,
            api_keys.router,
            payment_methods.router,
            internal.router,
            internal.keys_router,
        ],
        lifespan=lifespan,
        # The relay publishes user.registered and the audit events this service writes.
        eventing=True,
        openapi_tags=OPENAPI_TAGS,
    )
    _declare_api_key_scheme(app)
    return app


def run() -> None:
    """The `user-service` console script: uvicorn as the registry and settings say."""
    run_service("user")


if __name__ == "__main__":
    run()
