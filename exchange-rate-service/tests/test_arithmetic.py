"""Money-safe FX arithmetic: exponents, half-even rounding, cross rates through EUR, round trips."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from exchange_rate_service.domain.arithmetic import (
    apply_margin,
    convert_minor,
    cross_rate,
    format_rate,
    round_rate,
)
from paygate_common.money import CURRENCY_EXPONENTS, major_to_minor, minor_to_major

# Per-EUR rates like the ECB's (and an operator's for the currencies it lacks).
PER_EUR = {
    "eur": Decimal(1),
    "usd": Decimal("1.1172"),
    "jpy": Decimal("175.68"),
    "gbp": Decimal("0.8338"),
    "idr": Decimal("20275.17"),
    "kwd": Decimal("0.3431"),
    "bdt": Decimal("136.42"),
    "bhd": Decimal("0.4212"),
    "krw": Decimal("1491.76"),
}


def test_exponents_of_the_currencies_that_break_naive_code() -> None:
    assert CURRENCY_EXPONENTS["jpy"] == 0
    assert CURRENCY_EXPONENTS["bdt"] == 2
    assert CURRENCY_EXPONENTS["kwd"] == 3
    assert minor_to_major(1000, "jpy") == Decimal(1000)
    assert minor_to_major(1000, "kwd") == Decimal("1.000")
    assert major_to_minor(Decimal("3.0715"), "kwd") == 3072  # half-even: 3071.5 -> 3072
    assert major_to_minor(Decimal("3.0725"), "kwd") == 3072  # half-even: 3072.5 -> 3072


def test_1000_jpy_to_usd_uses_both_exponents() -> None:
    rate = cross_rate(PER_EUR["jpy"], PER_EUR["usd"])
    assert rate == Decimal("0.006359289617")  # 1.1172 / 175.68 to 10 significant digits
    # 1000 yen (exponent 0) = 6.359289617 dollars = 636 cents (exponent 2)
    assert convert_minor(1000, rate, from_currency="jpy", to_currency="usd") == 636


def test_1000_usd_cents_to_kwd_fils() -> None:
    rate = cross_rate(PER_EUR["usd"], PER_EUR["kwd"])
    assert rate == Decimal("0.3071070533")  # 0.3431 / 1.1172 = 0.30710705334…
    # 10.00 dollars (exponent 2) = 3.071070534 dinars = 3071 fils (exponent 3)
    assert convert_minor(1000, rate, from_currency="usd", to_currency="kwd") == 3071


def test_cross_rates_go_through_eur_and_eur_is_exact() -> None:
    assert cross_rate(Decimal(1), PER_EUR["usd"]) == Decimal("1.1172")
    assert cross_rate(PER_EUR["usd"], Decimal(1)) == Decimal("0.8950948801")
    assert cross_rate(PER_EUR["usd"], PER_EUR["usd"]) == Decimal(1)
    assert format_rate(Decimal("175.6800000")) == "175.68"
    assert format_rate(Decimal("0.8950948800")) == "0.89509488"
    assert format_rate(Decimal("100")) == "100"


def test_ties_round_half_even_not_half_up() -> None:
    # 25 cents at 0.5 = 12.5 cents -> 12 (even); 35 cents -> 17.5 -> 18 (even)
    assert convert_minor(25, Decimal("0.5"), from_currency="usd", to_currency="eur") == 12
    assert convert_minor(35, Decimal("0.5"), from_currency="usd", to_currency="eur") == 18
    # rates to 10 significant digits, ties to the even last digit
    assert round_rate(Decimal("1.0000000005")) == Decimal("1.000000000")
    assert round_rate(Decimal("1.0000000015")) == Decimal("1.000000002")
    assert round_rate(Decimal("0.000012345678905")) == Decimal("0.00001234567890")


def test_margin_takes_basis_points_off_the_customer_rate() -> None:
    assert apply_margin(Decimal("0.9"), 50) == Decimal("0.8955")
    assert apply_margin(Decimal("0.9"), 0) == Decimal("0.9")


def _unit_in(currency: str, other: str) -> Decimal:
    """What one minor unit of `currency` is worth in minor units of `other`."""
    rate = cross_rate(PER_EUR[currency], PER_EUR[other])
    return minor_to_major(1, currency) * rate * Decimal(10) ** CURRENCY_EXPONENTS[other]


pairs = st.sampled_from(sorted(PER_EUR)).flatmap(
    lambda a: st.tuples(st.just(a), st.sampled_from(sorted(set(PER_EUR) - {a})))
)


@settings(max_examples=400, deadline=None)
@given(pair=pairs, amount=st.integers(min_value=1, max_value=99_999_999))
def test_convert_there_and_back_stays_within_one_minor_unit_per_step(
    pair: tuple[str, str], amount: int
) -> None:
    a, b = pair
    there = convert_minor(
        amount, cross_rate(PER_EUR[a], PER_EUR[b]), from_currency=a, to_currency=b
    )
    back = convert_minor(there, cross_rate(PER_EUR[b], PER_EUR[a]), from_currency=b, to_currency=a)
    # Step 1 rounds to half a minor unit of b (worth `unit` of a), step 2 to half a unit of a;
    # the two 10-digit rates add at most a relative 1e-9 each.
    unit = _unit_in(b, a)
    bound = Decimal("0.5") * unit + Decimal("0.5") + Decimal(amount) * Decimal("2e-9") + 1
    assert abs(back - amount) <= bound, (a, b, amount, there, back)
    # and when b is at least as fine as a, that is one minor unit of a
    if unit <= 1:
        assert abs(back - amount) <= 1 + Decimal(amount) * Decimal("2e-9")


@settings(max_examples=200, deadline=None)
@given(pair=pairs, amount=st.integers(min_value=1, max_value=99_999_999))
def test_conversion_is_exact_to_the_half_even_rule(pair: tuple[str, str], amount: int) -> None:
    a, b = pair
    rate = cross_rate(PER_EUR[a], PER_EUR[b])
    got = convert_minor(amount, rate, from_currency=a, to_currency=b)
    exact = Decimal(amount) * rate * Decimal(10) ** (CURRENCY_EXPONENTS[b] - CURRENCY_EXPONENTS[a])
    assert abs(Decimal(got) - exact) <= Decimal("0.5")
    assert isinstance(got, int)
