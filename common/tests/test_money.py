"""Minor units and exponents: exact Decimal conversion, half-even rounding, the exponent table."""

from __future__ import annotations

from decimal import Decimal

import pytest

from paygate_common.money import currency_exponent, major_to_minor, minor_to_major


@pytest.mark.parametrize(
    ("currency", "exponent", "minor", "major"),
    [
        ("jpy", 0, 1000, "1000"),
        ("usd", 2, 1999, "19.99"),
        ("bdt", 2, 5, "0.05"),
        ("kwd", 3, 1000, "1.000"),
    ],
)
def test_minor_and_major_units_follow_the_currency_exponent(
    currency: str, exponent: int, minor: int, major: str
) -> None:
    assert currency_exponent(currency) == exponent
    assert minor_to_major(minor, currency) == Decimal(major)
    assert major_to_minor(Decimal(major), currency) == minor


def test_major_to_minor_rounds_half_to_even() -> None:
    assert major_to_minor(Decimal("0.125"), "usd") == 12
    assert major_to_minor(Decimal("0.135"), "usd") == 14
    assert major_to_minor(Decimal("0.1251"), "usd") == 13
    assert major_to_minor(Decimal("2.5"), "jpy") == 2
    assert currency_exponent("USD") == 2
    with pytest.raises(KeyError):
        currency_exponent("xxx")
