"""Short-lived HS256 tokens that services present to each other's `/internal/*` endpoints."""

from __future__ import annotations

import time
from typing import Any

import jwt

from paygate_common.auth.errors import ServiceTokenInvalid
from paygate_common.auth.keys import new_jti
from paygate_common.settings import ServiceSettings

SERVICE_TOKEN_ALGORITHM = "HS256"
SERVICE_AUDIENCE_PREFIX = "paygate-internal:"
SERVICE_TOKEN_LEEWAY_SECONDS = 5


def service_audience(name: str) -> str:
    """`"user-service"` and `"user"` both name the same audience, `paygate-internal:user`.

    Callers address targets by their key in `service_urls` ("user") while a service knows itself
    by `service_name` ("user-service"); both must agree on one audience.
    """
    short = name.removesuffix("-service")
    return SERVICE_AUDIENCE_PREFIX + short


def issue_service_token(
    settings: ServiceSettings,
    *,
    audience_service: str,
    ttl_seconds: int | None = None,
    now: int | None = None,
) -> str:
    """A token proving "I am `settings.service_name`" to `audience_service` for a short while."""
    issued_at = int(time.time()) if now is None else now
    ttl = settings.service_token_ttl_seconds if ttl_seconds is None else ttl_seconds
    claims: dict[str, Any] = {
        "iss": settings.service_name,
        "sub": settings.service_name,
        "aud": service_audience(audience_service),
        "iat": issued_at,
        "exp": issued_at + ttl,
        "jti": new_jti(),
    }
    return jwt.encode(
        claims,
        settings.service_token_secret.get_secret_value(),
        algorithm=SERVICE_TOKEN_ALGORITHM,
        headers={"typ": "JWT"},
    )


def verify_service_token(token: str, settings: ServiceSettings) -> str:
    """Verify a service token addressed to this service; returns the calling service's name."""
    if not token:
        raise ServiceTokenInvalid("A service token is required")
    try:
        claims = jwt.decode(
            token,
            settings.service_token_secret.get_secret_value(),
            algorithms=[SERVICE_TOKEN_ALGORITHM],
            audience=service_audience(settings.service_name),
            leeway=SERVICE_TOKEN_LEEWAY_SECONDS,
            options={"require": ["exp", "iss", "aud", "jti"]},
        )
    except jwt.ExpiredSignatureError:
        raise ServiceTokenInvalid("The service token has expired") from None
    except (jwt.PyJWTError, ValueError, TypeError):
        raise ServiceTokenInvalid("The service token is not valid") from None
    caller = claims.get("iss")
    if not isinstance(caller, str) or not caller:
        raise ServiceTokenInvalid("The service token names no caller")
    return caller
