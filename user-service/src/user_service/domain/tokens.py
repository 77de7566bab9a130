"""The access-token signing key (from settings, or generated for development) and token issuing."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paygate_common.auth import Role, SigningKey, issue_access_token, load_or_create_signing_key
from paygate_common.auth.tokens import ROLES
from user_service.settings import Settings
from user_service.store.tables import User

log = logging.getLogger("user_service.tokens")

GENERATED_KEY_PATH = Path("keys") / "jwt-signing.pem"


def load_signing_key(settings: Settings) -> SigningKey:
    """Settings win; without them a key is generated once into the state dir (never in production)."""
    if settings.jwt_private_key is not None:
        return SigningKey.from_pem(settings.jwt_private_key.get_secret_value())
    if settings.jwt_private_key_file:
        return SigningKey.from_pem(Path(settings.jwt_private_key_file).read_bytes())
    if settings.environment == "production":  # Settings refuses this too; belt and braces
        raise RuntimeError("refusing to generate a JWT signing key in production")
    path = Path(settings.paygate_state_dir) / GENERATED_KEY_PATH
    key = load_or_create_signing_key(path)
    log.info("using the development signing key in %s (kid %s)", path, key.kid)
    return key


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    token_type: str = "bearer"


def _role(user: User) -> Role:
    if user.role not in ROLES:  # the table's check constraint makes this unreachable
        raise ValueError(f"unknown role {user.role!r}")
    return user.role  # type: ignore[return-value]


def issue_for(
    user: User,
    *,
    signing_key: SigningKey,
    settings: Settings,
    ttl_seconds: int | None = None,
    extra_claims: Mapping[str, Any] | None = None,
) -> IssuedToken:
    """An access token for `user`: `sid` for a session's, `api_key_id`/`scope` for a key's."""
    token, expires_in = issue_access_token(
        signing_key,
        user_id=user.id,
        role=_role(user),
        email=user.email,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_seconds=ttl_seconds or settings.access_token_ttl_seconds,
        extra_claims=extra_claims,
    )
    return IssuedToken(access_token=token, expires_in=expires_in)
