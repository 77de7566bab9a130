"""user-service settings: `USER_SERVICE_*` first, then the suite-wide unprefixed variables."""

from __future__ import annotations

from typing import ClassVar

from pydantic import EmailStr, Field, SecretStr, model_validator

from paygate_common.settings import DEV_SECRET_MARKER, ServiceSettings

DEFAULT_STRIPE_API_KEY = f"sk_test_{DEV_SECRET_MARKER}-user-service-localstripe"
DEFAULT_API_KEY_HMAC_SECRET = f"{DEV_SECRET_MARKER}-api-key-hmac-secret-change-me-0123456789"
DAY = 86_400


class Settings(ServiceSettings):
    """Everything user-service reads from the environment; see the README's settings table."""

    registry_name: ClassVar[str] = "user"

    # Peers whose X-Forwarded-For uvicorn trusts (the gateway); the sign-in throttle keys on the IP.
    forwarded_allow_ips: str = "127.0.0.1"

    # Short-lived by design: a stolen access token dies within 15 minutes; sessions last
    # through refresh tokens, which are rotated and can be revoked.
    access_token_ttl_seconds: int = Field(default=900, ge=60, le=900)
    refresh_token_ttl_seconds: int = Field(default=30 * DAY, ge=60)
    session_max_age_seconds: int = Field(default=90 * DAY, ge=60)

    # API keys are stored as HMAC-SHA256(secret, key): a leaked table cannot be brute-forced
    # without this secret. Production refuses the development default (ServiceSettings).
    api_key_hmac_secret: SecretStr = SecretStr(DEFAULT_API_KEY_HMAC_SECRET)
    # Lifetime of the access token the gateway receives for a key (it caches it <= 5 s).
    api_key_token_ttl_seconds: int = Field(default=60, ge=10, le=300)
    api_keys_per_user: int = Field(default=25, ge=1)
    list_default_limit: int = Field(default=20, ge=1, le=100)
    # Production supplies the signing key; development generates one into the state dir.
    jwt_private_key: SecretStr | None = None
    jwt_private_key_file: str | None = None

    bootstrap_admin_email: EmailStr | None = None
    bootstrap_admin_password: SecretStr | None = None
    bootstrap_admin_full_name: str = "paygate admin"

    signin_max_failures_per_account: int = Field(default=5, ge=1)
    signin_max_failures_per_ip: int = Field(default=20, ge=1)
    signin_failure_window_seconds: int = Field(default=900, ge=1)

    stripe_api_base: str = "http://127.0.0.1:58420"
    stripe_api_key: SecretStr = SecretStr(DEFAULT_STRIPE_API_KEY)
    stripe_timeout_seconds: float = Field(default=10.0, gt=0)
    stripe_max_network_retries: int = Field(default=1, ge=0, le=5)

    @model_validator(mode="after")
    def _require_key_in_production(self) -> Settings:
        if self.environment == "production" and not (
            self.jwt_private_key or self.jwt_private_key_file
        ):
            raise ValueError(
                "production needs USER_SERVICE_JWT_PRIVATE_KEY or USER_SERVICE_JWT_PRIVATE_KEY_FILE;"
                " refusing to generate a signing key"
            )
        if bool(self.bootstrap_admin_email) != bool(self.bootstrap_admin_password):
            raise ValueError(
                "set both USER_SERVICE_BOOTSTRAP_ADMIN_EMAIL and"
                " USER_SERVICE_BOOTSTRAP_ADMIN_PASSWORD, or neither"
            )
        return self
