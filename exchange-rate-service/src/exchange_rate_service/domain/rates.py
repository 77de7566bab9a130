"""Rate snapshots (per-EUR rates in force on a day), cross rates, conversion and staleness; pure rules."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Literal

from exchange_rate_service.domain.arithmetic import apply_margin, convert_minor, cross_rate
from exchange_rate_service.domain.errors import RateUnavailable, UnknownCurrency
from paygate_common.money import SUPPORTED_CURRENCIES

RateSource = Literal["ecb", "operator"]
Day = date  # for fields named `date`, which would shadow the type
EUR = "eur"


def parse_currency(code: str, *, field_name: str = "currency") -> str:
    """A lowercase ISO-4217 code we support, or `UnknownCurrency` (422)."""
    normalised = code.strip().lower()
    if normalised not in SUPPORTED_CURRENCIES:
        raise UnknownCurrency(
            f"{field_name}: {code[:8]!r} is not a supported ISO-4217 currency", field=field_name
        )
    return normalised


def parse_symbols(symbols: str | None) -> list[str] | None:
    """`"eur,GBP"` -> ["eur", "gbp"]; None or empty means every currency."""
    if not symbols or not symbols.strip():
        return None
    codes = [parse_currency(s, field_name="symbols") for s in symbols.split(",") if s.strip()]
    return list(dict.fromkeys(codes))


@dataclass(frozen=True)
class EurRate:
    """Units of `currency` per one euro, in force from `rate_date`."""

    currency: str
    rate_per_eur: Decimal
    rate_date: date
    source: RateSource
    set_at: datetime | None = None  # operator rates: when it was set
    set_by: uuid.UUID | None = None  # operator rates: by whom

    def published_at(self) -> datetime:
        """When the rate became known: an operator's timestamp, or the start of the ECB day."""
        if self.source == "operator" and self.set_at is not None:
            return self.set_at
        return datetime.combine(self.rate_date, time(0), UTC)


@dataclass(frozen=True)
class StalenessPolicy:
    ecb_max_age: timedelta
    operator_max_age: timedelta

    def is_stale(self, rate: EurRate, *, now: datetime) -> bool:
        limit = self.operator_max_age if rate.source == "operator" else self.ecb_max_age
        return now - rate.published_at() > limit


@dataclass(frozen=True)
class Snapshot:
    """Every rate in force on `as_of`: the ECB publication on or before it, and operator rates.

    `ecb_date` is the date of that ECB publication (None before the first one). EUR itself is
    in `rates` at 1 whenever there is an ECB publication.
    """

    as_of: date
    ecb_date: date | None
    rates: Mapping[str, EurRate] = field(default_factory=dict)

    def rate(self, currency: str) -> EurRate:
        found = self.rates.get(currency)
        if found is None:
            raise RateUnavailable(
                f"No rate for {currency} on or before {self.as_of.isoformat()}", currency=currency
            )
        return found

    @classmethod
    def build(cls, as_of: date, ecb_date: date | None, rates: Iterable[EurRate]) -> Snapshot:
        by_currency = {r.currency: r for r in rates}
        if ecb_date is not None:
            by_currency[EUR] = EurRate(EUR, Decimal(1), ecb_date, "ecb")
        return cls(as_of=as_of, ecb_date=ecb_date, rates=by_currency)


@dataclass(frozen=True)
class RateTable:
    """What `GET /rates/latest` and `GET /rates/{date}` answer."""

    base: str
    date: Day
    rates: dict[str, Decimal]
    stale: bool
    # Rates in force from another day than `date` (operator rates), so nothing is hidden.
    rate_dates: dict[str, Day]


def rate_table(
    snapshot: Snapshot,
    *,
    base: str,
    symbols: list[str] | None,
    now: datetime,
    policy: StalenessPolicy,
) -> RateTable:
    """Cross rates from `base` to each symbol (every known currency when `symbols` is None)."""
    base_rate = snapshot.rate(base)
    wanted = symbols if symbols is not None else sorted(c for c in snapshot.rates if c != base)
    used = [base_rate, *(snapshot.rate(s) for s in wanted)]
    headline = snapshot.ecb_date or max(r.rate_date for r in used)
    return RateTable(
        base=base,
        date=headline,
        rates={r.currency: cross_rate(base_rate.rate_per_eur, r.rate_per_eur) for r in used[1:]},
        stale=any(policy.is_stale(r, now=now) for r in used),
        rate_dates={r.currency: r.rate_date for r in used if r.rate_date != headline},
    )


@dataclass(frozen=True)
class Conversion:
    from_currency: str
    to_currency: str
    amount: int
    converted_amount: int
    mid_rate: Decimal
    rate: Decimal  # what the amount was converted at (mid less margin for a quote)
    date: Day
    stale: bool


def convert(
    snapshot: Snapshot,
    *,
    from_currency: str,
    to_currency: str,
    amount: int,
    now: datetime,
    policy: StalenessPolicy,
    margin_bps: int = 0,
) -> Conversion:
    """`amount` (minor units of `from_currency`) in minor units of `to_currency`, half-even."""
    source, target = snapshot.rate(from_currency), snapshot.rate(to_currency)
    mid = cross_rate(source.rate_per_eur, target.rate_per_eur)
    rate = apply_margin(mid, margin_bps) if margin_bps else mid
    return Conversion(
        from_currency=from_currency,
        to_currency=to_currency,
        amount=amount,
        converted_amount=convert_minor(
            amount, rate, from_currency=from_currency, to_currency=to_currency
        ),
        mid_rate=mid,
        rate=rate,
        date=min(source.rate_date, target.rate_date),
        stale=policy.is_stale(source, now=now) or policy.is_stale(target, now=now),
    )


def rate_in_force(series: Mapping[str, list[EurRate]], currency: str, day: date) -> EurRate | None:
    """The rate of `currency` on `day` from its rows sorted by date.

    An ECB rate counts only on its own publication day (a discontinued currency must not be
    carried forward); an operator's rate holds until the next one.
    """
    if currency == EUR:
        return EurRate(EUR, Decimal(1), day, "ecb")
    found: EurRate | None = None
    for rate in series[currency]:
        if rate.rate_date > day:
            break
        found = rate if rate.source == "operator" or rate.rate_date == day else None
    return found


def history_series(
    pair_rates: Mapping[date, tuple[EurRate, EurRate]],
) -> list[tuple[date, Decimal]]:
    """The cross rate on each day of a history, oldest first."""
    return [
        (day, cross_rate(base.rate_per_eur, quote.rate_per_eur))
        for day, (base, quote) in sorted(pair_rates.items())
    ]
