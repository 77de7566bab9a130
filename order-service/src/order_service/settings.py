"""order-service settings: `ORDER_SERVICE_*` first, then the suite-wide unprefixed variables."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from paygate_common.idempotency import DEFAULT_TTL_SECONDS
from paygate_common.settings import ServiceSettings


class Settings(ServiceSettings):
    """Everything order-service reads from the environment."""

    registry_name: ClassVar[str] = "order"

    # An order nobody paid for within this time is cancelled (`payment_timeout`).
    pending_timeout_seconds: float = Field(default=900.0, gt=0)
    sweep_interval_seconds: float = Field(default=30.0, gt=0)
    sweep_batch_size: int = Field(default=100, ge=1, le=10_000)

    # Idempotency keys are kept at least this long; the sweeper purges older ones.
    idempotency_ttl_seconds: int = Field(default=DEFAULT_TTL_SECONDS, ge=24 * 3600)
    idempotency_purge_interval_seconds: float = Field(default=3600.0, gt=0)

    # payment.event handling: attempts before an event goes to `order.dlq`.
    consumer_max_attempts: int = Field(default=5, ge=1)

    list_default_limit: int = Field(default=20, ge=1, le=100)

    # Reserve each order against the user's limits at transaction-service before accepting it
    # (fails closed: 503 `limits_unavailable` while transaction-service cannot be reached).
    limits_enabled: bool = True
