"""Dependencies that hand routes the objects the lifespan built once (hasher, throttle, Stripe)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from paygate_common.auth import SigningKey
from user_service.domain.passwords import PasswordHasher
from user_service.domain.throttling import SigninThrottle
from user_service.providers.stripe import StripeCards
from user_service.settings import Settings


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _hasher(request: Request) -> PasswordHasher:
    hasher: PasswordHasher = request.app.state.password_hasher
    return hasher


def _throttle(request: Request) -> SigninThrottle:
    throttle: SigninThrottle = request.app.state.signin_throttle
    return throttle


def _signing_key(request: Request) -> SigningKey:
    key: SigningKey = request.app.state.signing_key
    return key


def _stripe_cards(request: Request) -> StripeCards:
    cards: StripeCards = request.app.state.stripe_cards
    return cards


def client_ip(request: Request) -> str:
    """The peer address; uvicorn resolves X-Forwarded-For from trusted proxies (the gateway)."""
    return request.client.host if request.client else "unknown"


SettingsDep = Annotated[Settings, Depends(_settings)]
HasherDep = Annotated[PasswordHasher, Depends(_hasher)]
ThrottleDep = Annotated[SigninThrottle, Depends(_throttle)]
SigningKeyDep = Annotated[SigningKey, Depends(_signing_key)]
StripeCardsDep = Annotated[StripeCards, Depends(_stripe_cards)]
ClientIP = Annotated[str, Depends(client_ip)]
