"""Request and response bodies of the rates, conversion, quote and admin APIs (rates as decimal strings)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from exchange_rate_service.domain.arithmetic import format_rate
from exchange_rate_service.domain.rates import Conversion, EurRate, RateTable
from exchange_rate_service.store.quotes import QuoteRecord
from exchange_rate_service.store.rates import FeedStatus
from paygate_common.money import SUPPORTED_CURRENCIES, AmountMinor

RateString = Annotated[str, Field(pattern=r"^\d+(\.\d+)?$", examples=["0.9234"])]
# What the document states about the parameters the domain parses itself (it also accepts
# codes in upper case and trims spaces; anything else is 422 `unknown_currency` /
# `invalid_date_range`, so the specific codes stay).
CURRENCIES = sorted(SUPPORTED_CURRENCIES)
CURRENCY_SCHEMA: dict[str, Any] = {"enum": CURRENCIES}
SYMBOLS_SCHEMA: dict[str, Any] = {
    "pattern": "^({0})(,({0}))*$".format("|".join(CURRENCIES)),
}
DAY_SCHEMA: dict[str, Any] = {"format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
CurrencyCode = Annotated[
    str, Field(min_length=3, max_length=3, examples=["usd"], json_schema_extra=CURRENCY_SCHEMA)
]


class RatesRead(BaseModel):
    base: str
    date: dt.date = Field(description="The ECB publication the rates are from")
    rates: dict[str, RateString]
    stale: bool = Field(description="True when a rate used is older than the configured age")
    rate_dates: dict[str, dt.date] = Field(
        default_factory=dict,
        description="Rates in force from another day than `date` (operator-set rates)",
    )

    @classmethod
    def of(cls, table: RateTable) -> RatesRead:
        return cls(
            base=table.base,
            date=table.date,
            rates={c: format_rate(r) for c, r in table.rates.items()},
            stale=table.stale,
            rate_dates=table.rate_dates,
        )


class HistoryPoint(BaseModel):
    date: dt.date
    rate: RateString


class HistoryRead(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    base: str
    symbol: str
    from_date: dt.date = Field(alias="from")
    to_date: dt.date = Field(alias="to")
    # Oldest first, one point per ECB publication day in the range.
    items: list[HistoryPoint]


class ConversionRead(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_currency: str = Field(alias="from")
    to_currency: str = Field(alias="to")
    amount: int = Field(description="Minor units of `from`")
    converted_amount: int = Field(description="Minor units of `to`, rounded half-even")
    rate: RateString
    date: dt.date
    stale: bool

    @classmethod
    def of(cls, c: Conversion) -> ConversionRead:
        return cls(
            from_currency=c.from_currency,
            to_currency=c.to_currency,
            amount=c.amount,
            converted_amount=c.converted_amount,
            rate=format_rate(c.rate),
            date=c.date,
            stale=c.stale,
        )


class QuoteCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={"examples": [{"from": "usd", "to": "bdt", "amount": 10000}]},
    )

    from_currency: CurrencyCode = Field(alias="from")
    to_currency: CurrencyCode = Field(alias="to")
    amount: AmountMinor


class QuoteRead(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: uuid.UUID
    from_currency: str = Field(alias="from")
    to_currency: str = Field(alias="to")
    amount: int
    rate: RateString = Field(description="The customer's rate: mid rate less the margin")
    mid_rate: RateString
    margin_bps: int
    converted_amount: int
    rate_date: dt.date
    status: Literal["open", "redeemed", "expired"]
    created_at: dt.datetime
    expires_at: dt.datetime
    redeemed_at: dt.datetime | None

    @classmethod
    def of(cls, quote: QuoteRecord, status: str) -> QuoteRead:
        return cls.model_validate(
            {
                "id": quote.id,
                "from": quote.from_currency,
                "to": quote.to_currency,
                "amount": quote.amount,
                "rate": format_rate(quote.rate),
                "mid_rate": format_rate(quote.mid_rate),
                "margin_bps": quote.margin_bps,
                "converted_amount": quote.converted_amount,
                "rate_date": quote.rate_date,
                "status": status,
                "created_at": quote.created_at,
                "expires_at": quote.expires_at,
                "redeemed_at": quote.redeemed_at,
            }
        )


class QuoteRedeem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The caller's own id for what the quote pays for (a payment id): a retry with the same
    # reference gets the redeemed quote back instead of 409.
    reference: str | None = Field(default=None, min_length=1, max_length=255)


class OperatorRateUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"rate_per_eur": "131.25"}]}
    )

    rate_per_eur: str = Field(
        description="Units of the currency per one euro, as a decimal string (never a float)",
        examples=["131.25"],
        # the validator's rule: up to 12 + 12 digits, greater than zero
        json_schema_extra={"pattern": r"^(?=.*[1-9])\d{1,12}(\.\d{1,12})?$"},
    )

    @field_validator("rate_per_eur")
    @classmethod
    def _exact_positive_decimal(cls, value: str) -> str:
        import re

        if not re.fullmatch(r"\d{1,12}(\.\d{1,12})?", value.strip()):
            raise ValueError("a positive decimal string such as '131.25' (up to 12 decimals)")
        if Decimal(value) <= 0:
            raise ValueError("must be greater than zero")
        return value.strip()


class OperatorRateRead(BaseModel):
    currency: str
    rate_per_eur: RateString
    rate_date: dt.date
    set_by: uuid.UUID | None
    set_at: dt.datetime | None
    previous_rate_per_eur: RateString | None = None

    @classmethod
    def of(cls, rate: EurRate, previous: EurRate | None = None) -> OperatorRateRead:
        return cls(
            currency=rate.currency,
            rate_per_eur=format_rate(rate.rate_per_eur),
            rate_date=rate.rate_date,
            set_by=rate.set_by,
            set_at=rate.set_at,
            previous_rate_per_eur=format_rate(previous.rate_per_eur) if previous else None,
        )


class FeedRead(BaseModel):
    name: str
    url: str | None
    last_attempt_at: dt.datetime | None
    last_success_at: dt.datetime | None
    last_error: str | None
    latest_rate_date: dt.date | None
    stale: bool

    @classmethod
    def of(cls, status: FeedStatus, *, stale: bool) -> FeedRead:
        return cls(
            name=status.name,
            url=status.url,
            last_attempt_at=status.last_attempt_at,
            last_success_at=status.last_success_at,
            last_error=status.last_error,
            latest_rate_date=status.latest_rate_date,
            stale=stale,
        )


class AdminRatesRead(BaseModel):
    feeds: list[FeedRead]
    latest_ecb_date: dt.date | None
    operator_rates: list[OperatorRateRead]
