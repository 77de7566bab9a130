"""Operator configuration: the schema of every key admin-service stores, and a live view of it.

admin-service owns the values (versioned, validated against these models); a service that reads
a key keeps a `ConfigView`: loaded from admin-service at start-up (the last known value, or the
default, when admin-service is down) and replaced when `config.changed` arrives.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from paygate_common.internal.config import CONFIG_PATH, ConfigRead
from paygate_common.money import Currency

log = logging.getLogger("paygate.config")

PROVIDERS = ("stripe", "paypal", "sslcommerz", "sandbox")


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeeRule(_Config):
    """A fee: `basis_points` of the captured amount plus `fixed` minor units."""

    provider: str | None = Field(default=None, description="None = any provider")
    currency: Currency | None = Field(default=None, description="None = any currency")
    basis_points: int = Field(ge=0, le=10_000)
    fixed: int = Field(default=0, ge=0)


class FeesConfig(_Config):
    """Key `fees`: the most specific rule (provider and currency, then either, then none) wins."""

    rules: list[FeeRule] = Field(
        default_factory=lambda: [FeeRule(basis_points=290, fixed=30)], min_length=1
    )
    refund_returns_fee: bool = False

    def rule_for(self, provider: str, currency: str) -> FeeRule:
        def specificity(rule: FeeRule) -> int:
            return (rule.provider is not None) * 2 + (rule.currency is not None)

        matching = [
            r
            for r in self.rules
            if r.provider in (None, provider) and r.currency in (None, currency)
        ]
        if not matching:
            return FeeRule(basis_points=0)
        return max(matching, key=specificity)


class LimitRule(_Config):
    currency: Currency
    per_transaction: int | None = Field(default=None, gt=0)
    daily: int | None = Field(default=None, gt=0)
    monthly: int | None = Field(default=None, gt=0)


class LimitsConfig(_Config):
    """Key `limits`: defaults per currency, and per-user overrides (user id → rules)."""

    defaults: list[LimitRule] = Field(default_factory=list)
    overrides: dict[str, list[LimitRule]] = Field(default_factory=dict)


class ProvidersConfig(_Config):
    """Key `payments.providers`: which providers take new payments, and the default."""

    enabled: list[str] = Field(default_factory=lambda: ["stripe", "sandbox"], min_length=1)
    default: str = "stripe"

    @model_validator(mode="after")
    def _default_is_enabled(self) -> ProvidersConfig:
        unknown = sorted(set(self.enabled) - set(PROVIDERS))
        if unknown:
            raise ValueError(f"unknown providers: {', '.join(unknown)}")
        if self.default not in self.enabled:
            raise ValueError("the default provider must be enabled")
        return self


CONFIG_KEYS: dict[str, type[_Config]] = {
    "fees": FeesConfig,
    "limits": LimitsConfig,
    "payments.providers": ProvidersConfig,
}


def config_model(key: str) -> type[_Config]:
    """The model of a key; KeyError for a key nobody reads."""
    return CONFIG_KEYS[key]


def validate_config(key: str, value: Any) -> _Config:
    """The value parsed by its key's model; raises `ValidationError` or `KeyError`."""
    return config_model(key).model_validate(value)


C = TypeVar("C", bound=_Config)


class ConfigView(Generic[C]):
    """The current value of one key in a consuming service (a default until one is loaded)."""

    def __init__(self, key: str, model: type[C], default: C | None = None) -> None:
        self.key = key
        self.model = model
        self.value: C = default if default is not None else model()
        self.version = 0
        self._listeners: list[Callable[[C], None]] = []

    def on_change(self, listener: Callable[[C], None]) -> None:
        self._listeners.append(listener)

    def apply(self, value: Any, version: int) -> bool:
        """Take a newer version; an older or invalid one is ignored (logged). True if taken."""
        if version <= self.version:
            return False
        try:
            parsed = self.model.model_validate(value)
        except ValidationError:
            log.exception(
                "config %s version %s is invalid here; keeping %s", self.key, version, self.version
            )
            return False
        self.value, self.version = parsed, version
        for listener in self._listeners:
            listener(parsed)
        log.info("config %s is now version %s", self.key, version)
        return True

    async def load(self, client: Any) -> None:
        """Fetch the current version from admin-service (`ServiceClient` for "admin").

        admin-service down or the key never set: the value stays what it was (the default at
        start-up), so a service still starts; the next `config.changed` brings it up to date.
        """
        try:
            response = await client.get(CONFIG_PATH.format(key=self.key))
        except Exception as exc:  # any transport failure: keep the last known value
            log.warning(
                "config %s: admin-service unreachable (%s); keeping version %s",
                self.key,
                type(exc).__name__,
                self.version,
            )
            return
        if response.status_code == 404:
            return
        if response.status_code != 200:
            log.warning("config %s: admin-service answered %s", self.key, response.status_code)
            return
        try:
            answer = ConfigRead.model_validate_json(response.content)
        except ValidationError:
            log.warning("config %s: admin-service answered outside ConfigRead", self.key)
            return
        self.apply(answer.value, answer.version)
