"""The access-token signing key (from settings, or generated for development) and token issuing."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from paygate_common.auth import SigningKey, issue_access_token, load_or_create_signing_key
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


def issue_for(user: User, *, signing_key: SigningKey, settings: Settings) -> IssuedToken:
    token, expires_in = issue_access_token(
        signing_key,
        user_id=user.id,
        role="admin" if user.role == "admin" else "customer",
        email=user.email,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_seconds=settings.access_token_ttl_seconds,
    )
    return IssuedToken(access_token=token, expires_in=expires_in)
