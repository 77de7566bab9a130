"""FastAPI dependencies: the calling user (`CurrentPrincipal`, `AdminPrincipal`) and service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from paygate_common.auth.errors import AdminRequired, ServiceTokenInvalid, TokenMissing
from paygate_common.auth.jwks import JWKSCache
from paygate_common.auth.service_tokens import verify_service_token
from paygate_common.auth.tokens import Principal, verify_access_token
from paygate_common.settings import ServiceSettings

# Declared so the OpenAPI document carries the scheme and Swagger's Authorize button works;
# `auto_error=False` because we raise our own problem+json errors.
oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl="/auth/token", auto_error=False, scheme_name="OAuth2PasswordBearer"
)


def bearer_token(request: Request) -> str | None:
    """The token from `Authorization: Bearer <token>`, or None."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def jwks_for(request: Request) -> JWKSCache:
    """The app's key cache; created from `settings.jwks_url` on first use if the app set none."""
    state = request.app.state
    cache: JWKSCache | None = getattr(state, "jwks", None)
    if cache is None:
        settings: ServiceSettings = state.settings
        cache = JWKSCache(settings.jwks_url, ttl_seconds=settings.jwks_cache_seconds)
        state.jwks = cache
    return cache


async def get_current_principal(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Principal:
    """The verified caller; 401 problem+json (`token_missing`/`token_invalid`/`token_expired`)."""
    if not token:
        raise TokenMissing("An access token is required")
    settings: ServiceSettings = request.app.state.settings
    principal = await verify_access_token(
        token,
        jwks=jwks_for(request),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_current_principal)]


async def require_admin(principal: CurrentPrincipal) -> Principal:
    if not principal.is_admin:
        raise AdminRequired("This action needs the admin role")
    return principal


AdminPrincipal = Annotated[Principal, Depends(require_admin)]


async def require_service_token(request: Request) -> str:
    """The calling service's name, from a valid service token; 401 `service_token_invalid`."""
    token = bearer_token(request)
    if not token:
        raise ServiceTokenInvalid("A service token is required")
    return verify_service_token(token, request.app.state.settings)


ServiceCaller = Annotated[str, Depends(require_service_token)]
