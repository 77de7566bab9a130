"""Money as integer minor units plus a lowercase ISO-4217 code; never a float."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

# ISO-4217 exponents for the currencies we accept (Stripe's list, minus the exotic ones).
CURRENCY_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(
        [
            "usd",
            "eur",
            "gbp",
            "aud",
            "cad",
            "chf",
            "cny",
            "sek",
            "nok",
            "dkk",
            "pln",
            "czk",
            "huf",
            "ron",
            "bgn",
            "nzd",
            "sgd",
            "hkd",
            "inr",
            "bdt",
            "mxn",
            "brl",
            "zar",
            "aed",
            "sar",
            "ils",
            "thb",
            "myr",
            "php",
            "idr",
            "try",
            "egp",
            "ngn",
            "kes",
            "pkr",
            "lkr",
        ],
        2,
    ),
    **dict.fromkeys(["jpy", "krw", "vnd", "clp", "isk", "ugx", "xaf", "xof"], 0),
    **dict.fromkeys(["bhd", "jod", "kwd", "omr", "tnd"], 3),
}
SUPPORTED_CURRENCIES = frozenset(CURRENCY_EXPONENTS)

# Stripe's own ceiling for one charge (99,999,999 minor units in most currencies).
MAX_AMOUNT_MINOR = 99_999_999


# Enough digits for any amount times any rate; the rounding is the one documented for money.
_EXACT = Context(prec=50, rounding=ROUND_HALF_EVEN)


def currency_exponent(currency: str) -> int:
    """Digits after the decimal point in the currency's minor unit (JPY 0, USD 2, KWD 3)."""
    return CURRENCY_EXPONENTS[currency.lower()]


def minor_to_major(amount: int, currency: str) -> Decimal:
    """1999 usd -> Decimal("19.99"); exact."""
    return Decimal(amount).scaleb(-currency_exponent(currency), context=_EXACT)


def major_to_minor(value: Decimal, currency: str) -> int:
    """Decimal("19.985") usd -> 1998: to the nearest minor unit, ties to even (banker's rounding)."""
    scaled = value.scaleb(currency_exponent(currency), context=_EXACT)
    return int(scaled.to_integral_value(rounding=ROUND_HALF_EVEN, context=_EXACT))


def _currency(value: str) -> str:
    code = value.strip().lower()
    if code not in SUPPORTED_CURRENCIES:
        raise ValueError(f"unsupported currency {value!r}; use a lowercase ISO-4217 code")
    return code


Currency = Annotated[
    str, Field(min_length=3, max_length=3, examples=["usd"]), AfterValidator(_currency)
]
AmountMinor = Annotated[
    int,
    Field(
        gt=0,
        le=MAX_AMOUNT_MINOR,
        strict=True,
        description="Amount in minor units (cents)",
        examples=[1999],
    ),
]


class Money(BaseModel):
    amount: AmountMinor
    currency: Currency

    def format(self) -> str:
        exp = CURRENCY_EXPONENTS[self.currency]
        major = self.amount / (10**exp) if exp else self.amount
        return f"{major:,.{exp}f} {self.currency.upper()}"
