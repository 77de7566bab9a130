"""The gateway's settings: every variable is `GATEWAY_<FIELD>`, shared ones also unprefixed."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from pydantic import Field, SecretStr, field_validator, model_validator

from paygate_common.services import SERVICES, replica_urls_env
from paygate_common.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    """Limits use the `limits` library's notation: `100/second`, `1000/minute;20/second`."""

    registry_name: ClassVar[str] = "gateway"

    # --- authentication at the edge -------------------------------------------------------
    auth_enabled: bool = True
    verified_token_cache_size: int = 50_000
    # an unknown `kid` refetches the JWKS, but at most this often (a flood of made-up kids
    # must not become a flood of requests to user-service)
    jwks_min_refetch_seconds: float = 5.0
    # API keys (`Bearer pgk_…`, see apikeys.py): how long user-service's answer is trusted. A
    # revoked key, or one whose owner was disabled, is refused within this time (at most 5 s).
    api_key_cache_seconds: float = Field(default=4.0, gt=0, le=5.0)
    api_key_refresh_ahead_seconds: float = Field(default=1.0, ge=0)
    api_key_cache_size: int = Field(default=50_000, ge=1)
    api_key_resolve_timeout_seconds: float = Field(default=2.0, gt=0)

    # --- rate limits (Redis is the source of truth; see ratelimit.py) ---------------------
    rate_limit_enabled: bool = True
    rate_limit_anon: str = "60/minute"
    rate_limit_user: str = "600/minute"
    # sign-in, sign-up and the token form: per client IP, much stricter
    rate_limit_auth: str = "10/minute"
    # how often each gateway process pushes its local counts to Redis and reads the totals
    rate_limit_sync_ms: int = 5
    # take X-Forwarded-For's first hop as the client IP (only behind a trusted load balancer)
    trust_forwarded_for: bool = False

    # --- proxying -------------------------------------------------------------------------
    max_body_bytes: int = 1_048_576
    upstream_timeout_seconds: float = 15.0
    upstream_connect_timeout_seconds: float = 2.0
    upstream_pool_size: int = 256
    upstream_keepalive_seconds: float = 30.0

    # --- several instances per service (balancer.py) -----------------------------------------
    # A service's instances: `GATEWAY_<SERVICE>_URLS=http://a:8002,http://b:8012` (the registry
    # name in capitals, `-` as `_`: GATEWAY_EXCHANGE_RATE_URLS), or all of them as one JSON map
    # in GATEWAY_UPSTREAM_URLS. A service not listed has one instance: its `service_urls` entry.
    upstream_urls: dict[str, list[str]] = {}
    # passive health: consecutive failures that take an instance out of rotation, and for how
    # long before one probe request may bring it back (doubling per failed probe, up to max)
    upstream_eject_after_failures: int = Field(default=3, ge=1)
    upstream_eject_seconds: float = Field(default=5.0, gt=0)
    upstream_eject_max_seconds: float = Field(default=30.0, gt=0)

    # --- circuit breaker, per upstream service ----------------------------------------------
    breaker_failure_threshold: int = 5
    breaker_reset_seconds: float = 10.0

    # --- merged API reference ---------------------------------------------------------------
    openapi_refresh_seconds: float = 30.0
    upstream_health_timeout_seconds: float = 2.0

    # --- the gateway's own surfaces -------------------------------------------------------
    # Prometheus `/metrics` is never on the public port unless a token is set: it is served on
    # an operator listener (`metrics_host:metrics_port`; 0 picks a free port; unset = none).
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    # Also serve `/metrics` on the public port, to `Authorization: Bearer <this token>` only.
    metrics_token: SecretStr | None = None
    # `/ready` fails while Redis is down (rate limits would fall back to per-process counts).
    ready_requires_redis: bool = True
    ready_timeout_seconds: float = 2.0

    # --- TLS on the public edge: HTTPS when both are set (see `gateway.main.run`) -----------
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    # `Strict-Transport-Security` on every answer to an HTTPS request
    hsts_max_age_seconds: int = 31_536_000

    # --- CORS: off unless origins are listed ----------------------------------------------
    cors_allow_origins: list[str] = []
    cors_allow_credentials: bool = False
    cors_max_age_seconds: int = 600

    @field_validator("upstream_urls", mode="before")
    @classmethod
    def _split_url_lists(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: _url_list(v) if isinstance(v, str) else v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _per_service_url_lists(self) -> GatewaySettings:
        for spec in SERVICES:
            listed = os.environ.get(replica_urls_env(spec.name))
            if listed and spec.name not in self.upstream_urls:
                self.upstream_urls[spec.name] = _url_list(listed)
        return self

    def instance_urls(self, name: str) -> list[str]:
        """Every instance of service `name` the gateway balances over."""
        return [u.rstrip("/") for u in self.upstream_urls.get(name) or [self.service_url(name)]]


def _url_list(value: str) -> list[str]:
    return [u.strip() for u in value.split(",") if u.strip()]
