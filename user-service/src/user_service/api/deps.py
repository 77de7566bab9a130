"""Dependencies that hand routes the objects the lifespan built once (hasher, throttle, Stripe)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from paygate_common.auth import SigningKey
from paygate_common.db import SessionDep
from user_service.domain.passwords import PasswordHasher
from user_service.domain.throttling import SigninThrottle
from user_service.providers.stripe import StripeCards
from user_service.settings import Settings


def _app_state(name: str) -> Callable[[Request], Any]:
    def dependency(request: Request) -> Any:
        return getattr(request.app.state, name)

    return dependency


def client_ip(request: Request) -> str:
    """The peer address; uvicorn resolves X-Forwarded-For from trusted proxies (the gateway)."""
    return request.client.host if request.client else "unknown"


SettingsDep = Annotated[Settings, Depends(_app_state("settings"))]
HasherDep = Annotated[PasswordHasher, Depends(_app_state("password_hasher"))]
ThrottleDep = Annotated[SigninThrottle, Depends(_app_state("signin_throttle"))]
SigningKeyDep = Annotated[SigningKey, Depends(_app_state("signing_key"))]
StripeCardsDep = Annotated[StripeCards, Depends(_app_state("stripe_cards"))]
ClientIP = Annotated[str, Depends(client_ip)]


@dataclass(frozen=True)
class SignInContext:
    """Everything a sign-in needs, shared by the JSON and the OAuth2 form endpoints."""

    session: AsyncSession
    hasher: PasswordHasher
    throttle: SigninThrottle
    signing_key: SigningKey
    settings: Settings
    client_ip: str


def _sign_in_context(
    session: SessionDep,
    hasher: HasherDep,
    throttle: ThrottleDep,
    signing_key: SigningKeyDep,
    settings: SettingsDep,
    ip: ClientIP,
) -> SignInContext:
    return SignInContext(session, hasher, throttle, signing_key, settings, ip)


SignInDep = Annotated[SignInContext, Depends(_sign_in_context)]
