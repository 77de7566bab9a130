"""Money as integer minor units plus a lowercase ISO-4217 code; never a float."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field

from paygate_common.errors import InvalidRequest

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


# The schema lists the accepted codes (a client, and a fuzzer, can tell a supported currency
# from an unknown one); input is also accepted in upper case and normalised to lower case.
Currency = Annotated[
    str,
    Field(
        min_length=3,
        max_length=3,
        examples=["usd"],
        json_schema_extra={"enum": sorted(SUPPORTED_CURRENCIES)},
        description="Lowercase ISO-4217 code (upper case is accepted and normalised)",
    ),
    AfterValidator(_currency),
]


def _integral(value: object) -> object:
    # JSON has one number type: `1999.0` is the integer 1999 (as JSON Schema's "integer" says);
    # `19.99` stays a float and is refused. Strings and booleans are refused as before.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


AmountMinor = Annotated[
    int,
    Field(
        ge=1,  # `minimum: 1` in the schema (an integer > 0, said the simple way)
        le=MAX_AMOUNT_MINOR,
        strict=True,
        description="Amount in minor units (cents)",
        examples=[1999],
    ),
    # after Field: the constraints stay on the integer schema (and in the document)
    BeforeValidator(_integral),
]


class Money(BaseModel):
    amount: AmountMinor
    currency: Currency

    def format(self) -> str:
        exp = CURRENCY_EXPONENTS[self.currency]
        major = self.amount / (10**exp) if exp else self.amount
        return f"{major:,.{exp}f} {self.currency.upper()}"


# Stripe's minimum charge per settlement currency, in minor units (stripe.com/docs/currencies,
# "Minimum and maximum charge amounts"). A charge below it is refused by Stripe, so we refuse it
# at creation instead of failing it later. Currencies Stripe lists no minimum for here have none.
STRIPE_MINIMUM_CHARGE: dict[str, int] = {
    "usd": 50,
    "aed": 200,
    "aud": 50,
    "bgn": 100,
    "brl": 50,
    "cad": 50,
    "chf": 50,
    "czk": 1500,
    "dkk": 250,
    "eur": 50,
    "gbp": 30,
    "hkd": 400,
    "huf": 17500,
    "inr": 50,
    "jpy": 50,
    "mxn": 1000,
    "myr": 200,
    "nok": 300,
    "nzd": 50,
    "pln": 200,
    "ron": 200,
    "sek": 300,
    "sgd": 50,
    "thb": 1000,
}


def minimum_charge(currency: str) -> int:
    """The smallest chargeable amount in `currency` (Stripe's table; 1 where it lists none)."""
    return STRIPE_MINIMUM_CHARGE.get(currency.lower(), 1)


class AmountBelowMinimum(InvalidRequest):
    code, title = "amount_below_minimum", "The amount is below the provider's minimum charge"


def require_minimum_charge(amount: int, currency: str, *, minimum: int | None = None) -> None:
    """422 `amount_below_minimum` for an amount the provider would refuse to charge."""
    floor = minimum_charge(currency) if minimum is None else minimum
    if amount < floor:
        raise AmountBelowMinimum(
            f"The smallest {currency} amount that can be charged is {floor}",
            minimum_amount=floor,
        )
