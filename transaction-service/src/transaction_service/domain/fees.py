"""The fee schedule: basis points plus a fixed part per provider and currency, chosen at capture."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transaction_service.settings import FeeRule, Settings


@dataclass(frozen=True)
class FeeTerms:
    """The terms a payment's fee is computed with; fixed on the payment at its first capture."""

    basis_points: int
    fixed: int
    returned_on_refund: bool

    def fee_for(self, captured: int) -> int:
        """The whole fee on `captured` minor units (round half up), never more than captured."""
        if captured <= 0:
            return 0
        variable = (captured * self.basis_points + 5_000) // 10_000
        return min(captured, self.fixed + variable)

    def fee_returned_for(self, fee: int, captured: int, refunded: int) -> int:
        """The share of `fee` a refund of `refunded` gives back (all of it on a full refund)."""
        if not self.returned_on_refund or captured <= 0 or refunded <= 0:
            return 0
        return fee * min(refunded, captured) // captured


@dataclass(frozen=True)
class FeeSchedule:
    rules: tuple[FeeRule, ...]
    default_basis_points: int
    default_fixed: int
    refund_returns_fee: bool

    @classmethod
    def from_settings(cls, settings: Settings, config: Any = None) -> FeeSchedule:
        """Settings, replaced by the `fees` configuration (admin-service) once there is one.

        The config value is admin-service's `FeesConfig`: `{"rules": [{"provider": str|null,
        "currency": str|null, "basis_points", "fixed"}], "refund_returns_fee": bool}` (null
        matches any); no matching rule there means no fee.
        """
        if isinstance(config, dict):
            rules = tuple(_config_rule(r) for r in config.get("rules", []))
            return cls(rules, 0, 0, bool(config.get("refund_returns_fee", False)))
        return cls(
            tuple(settings.fee_rules),
            settings.fee_basis_points,
            settings.fee_fixed,
            settings.refund_returns_fee,
        )

    def terms_for(self, provider: str, currency: str) -> FeeTerms:
        """The most specific rule: provider and currency, then provider, then currency."""

        def score(rule: FeeRule) -> int:
            return (rule.provider != "*") * 2 + (rule.currency != "*")

        matching = [
            r for r in self.rules if r.provider in ("*", provider) and r.currency in ("*", currency)
        ]
        if matching:
            best = max(matching, key=score)
            return FeeTerms(best.basis_points, best.fixed, self.refund_returns_fee)
        return FeeTerms(self.default_basis_points, self.default_fixed, self.refund_returns_fee)


def _config_rule(rule: dict[str, Any]) -> FeeRule:
    return FeeRule(
        provider=rule.get("provider") or "*",
        currency=rule.get("currency") or "*",
        basis_points=rule["basis_points"],
        fixed=rule.get("fixed", 0),
    )


def validate_fees_config(value: Any) -> None:
    """Raise ValueError when a `fees` config value cannot be applied."""
    if not isinstance(value, dict) or not isinstance(value.get("rules", []), list):
        raise ValueError("the fees config must be {rules: [...], refund_returns_fee?}")
    for rule in value.get("rules", []):
        _config_rule(rule)
