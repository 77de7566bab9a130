"""transaction-service settings: `TRANSACTION_SERVICE_*` first, then the suite-wide unprefixed variables."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from paygate_common.settings import ServiceSettings

# The role the service's connections run as (`SET ROLE`): it may insert journal lines but has
# no UPDATE/DELETE on them (the migration creates it and grants exactly that).
LEDGER_ROLE = "paygate_ledger"


class FeeRule(BaseModel):
    """A fee for captures through `provider` in `currency` ("*" matches any)."""

    model_config = ConfigDict(extra="forbid")

    provider: str = "*"
    currency: str = "*"
    basis_points: int = Field(ge=0, le=10_000)
    fixed: int = Field(default=0, ge=0)


class LimitRule(BaseModel):
    """Limits per user for one currency, in minor units; None = no limit of that kind."""

    model_config = ConfigDict(extra="forbid")

    per_transaction: int | None = Field(default=None, gt=0)
    daily: int | None = Field(default=None, gt=0)
    monthly: int | None = Field(default=None, gt=0)


class Settings(ServiceSettings):
    """Everything transaction-service reads from the environment."""

    registry_name: ClassVar[str] = "transaction"

    # "" disables `SET ROLE` (then the login role's own privileges apply).
    db_role: str = LEDGER_ROLE

    # Fees charged at capture: `basis_points` of the captured amount plus `fixed` minor units,
    # unless a rule in `fee_rules` (or the `fees` config key from admin-service) matches.
    fee_basis_points: int = Field(default=290, ge=0, le=10_000)
    fee_fixed: int = Field(default=30, ge=0)
    fee_rules: list[FeeRule] = Field(default_factory=list)
    # Whether a refund gives the merchant back the matching share of the fee.
    refund_returns_fee: bool = False
    # Flag merchant balances `must_not_go_negative` (a refund larger than the balance then fails).
    merchant_balance_must_not_go_negative: bool = False

    # Limits per user and currency (minor units), unless `limits` (or the `limits` config key)
    # has an entry for the currency.
    limit_per_transaction: int | None = Field(default=99_999_999, gt=0)
    limit_daily: int | None = Field(default=100_000_000, gt=0)
    limit_monthly: int | None = Field(default=1_000_000_000, gt=0)
    limits: dict[str, LimitRule] = Field(default_factory=dict)

    # History pages in Redis: how long a page lives (it is also invalidated by every change).
    history_cache_ttl_seconds: int = Field(default=300, ge=1)
    list_default_limit: int = Field(default=20, ge=1, le=100)

    # An active reservation no payment event ever named (its order's own commit failed) is
    # released after this long; orders nobody pays are cancelled sooner (order.cancelled).
    reservation_orphan_after_seconds: float = Field(default=3600.0, gt=0)
    reservation_sweep_interval_seconds: float = Field(default=60.0, gt=0)
    reservation_sweep_batch_size: int = Field(default=100, ge=1, le=10_000)

    consumer_max_attempts: int = Field(default=5, ge=1)
    consumer_batch_size: int = Field(default=200, ge=1, le=10_000)
