"""The fee schedule: basis points plus a fixed part per provider and currency, chosen at capture."""

from __future__ import annotations

from collections.abc import Sequence
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
        """Settings, overridden by the `fees` configuration (admin-service) when there is one.

        The config value is `{"rules": [FeeRule...], "default": {"basis_points", "fixed"},
        "refund_returns_fee": bool}`, every part optional.
        """
        rules: Sequence[FeeRule] = settings.fee_rules
        bps, fixed, returns = (
            settings.fee_basis_points,
            settings.fee_fixed,
            settings.refund_returns_fee,
        )
        if isinstance(config, dict):
            if "rules" in config:
                rules = [FeeRule.model_validate(r) for r in config["rules"]]
            default = config.get("default") or {}
            bps = int(default.get("basis_points", bps))
            fixed = int(default.get("fixed", fixed))
            returns = bool(config.get("refund_returns_fee", returns))
        return cls(tuple(rules), bps, fixed, returns)

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


def validate_fees_config(value: Any) -> None:
    """Raise ValueError when a `fees` config value cannot be applied."""
    if not isinstance(value, dict):
        raise ValueError("the fees config must be an object")
    for rule in value.get("rules", []):
        FeeRule.model_validate(rule)
    default = value.get("default") or {}
    FeeRule.model_validate({"basis_points": default.get("basis_points", 0), **default})
