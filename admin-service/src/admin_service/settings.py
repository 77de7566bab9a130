"""admin-service settings: `ADMIN_SERVICE_*` first, then the suite-wide unprefixed variables."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr

from paygate_common.settings import DEV_SECRET_MARKER, ServiceSettings


class Settings(ServiceSettings):
    """Everything admin-service reads from the environment; see its README."""

    registry_name: ClassVar[str] = "admin"

    # Suite health: each service's /ready and /metrics are asked with this timeout.
    health_timeout_seconds: float = Field(default=2.0, gt=0)
    # Consumer lag above this many messages marks the suite `degraded`.
    health_lag_warning: int = Field(default=1000, ge=0)
    # How often suite health is sampled into the gauges Prometheus alerts on.
    health_sample_interval_seconds: float = Field(default=15.0, gt=0)
    # Services /admin/health reports; empty = every service in the registry.
    health_services: list[str] = Field(default_factory=list)

    # Keys the CSRF tokens of the console's and dashboard's forms to their session.
    csrf_secret: SecretStr = SecretStr(f"{DEV_SECRET_MARKER}-admin-csrf-secret-change-me")
