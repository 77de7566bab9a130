"""Money as integer minor units plus a lowercase ISO-4217 code; never a float."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field

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
