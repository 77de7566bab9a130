"""Exact FX arithmetic: cross rates through EUR, minor-unit conversion, margins; never a float.

Rounding rule (the only one): ROUND_HALF_EVEN everywhere, i.e. to the nearest value, ties to
the even neighbour. A derived rate is rounded to `RATE_SIGNIFICANT_DIGITS` significant digits;
a converted amount to the nearest minor unit of the target currency. The rate a response shows
is exactly the rate its amount was computed with.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal

from paygate_common.money import major_to_minor, minor_to_major

RATE_SIGNIFICANT_DIGITS = 10
BPS = Decimal(10_000)

_CTX = Context(prec=50, rounding=ROUND_HALF_EVEN)


def round_rate(value: Decimal) -> Decimal:
    """`value` to RATE_SIGNIFICANT_DIGITS significant digits, half-even."""
    if value.is_zero():
        return Decimal(0)
    quantum = Decimal(1).scaleb(value.adjusted() - RATE_SIGNIFICANT_DIGITS + 1)
    return value.quantize(quantum, rounding=ROUND_HALF_EVEN, context=_CTX)


def cross_rate(base_per_eur: Decimal, quote_per_eur: Decimal) -> Decimal:
    """Units of the quote currency per unit of the base currency, derived through EUR."""
    if base_per_eur == quote_per_eur:
        return Decimal(1)
    return round_rate(_CTX.divide(quote_per_eur, base_per_eur))


def apply_margin(mid_rate: Decimal, margin_bps: int) -> Decimal:
    """The customer's rate: fewer units of the target currency by `margin_bps` basis points."""
    return round_rate(_CTX.divide(_CTX.multiply(mid_rate, BPS - margin_bps), BPS))


def convert_minor(amount: int, rate: Decimal, *, from_currency: str, to_currency: str) -> int:
    """`amount` minor units of `from_currency` in minor units of `to_currency` at `rate`."""
    major = _CTX.multiply(minor_to_major(amount, from_currency), rate)
    return major_to_minor(major, to_currency)


def format_rate(rate: Decimal) -> str:
    """A plain decimal string without exponent or trailing zeros: "0.9234", "175.68", "1"."""
    text = format(rate.normalize(_CTX), "f")
    return text
