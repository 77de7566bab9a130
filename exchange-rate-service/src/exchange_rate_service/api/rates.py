"""`/rates/latest`, `/rates/history`, `/rates/{date}` and `/convert`: reference rates and conversion."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from exchange_rate_service.api.deps import NowDep, PolicyDep, ReaderDep, SettingsDep, parse_day
from exchange_rate_service.api.schemas import (
    CURRENCY_SCHEMA,
    DAY_SCHEMA,
    SYMBOLS_SCHEMA,
    ConversionRead,
    HistoryPoint,
    HistoryRead,
    RatesRead,
)
from exchange_rate_service.domain import history
from exchange_rate_service.domain import rates as domain
from exchange_rate_service.domain.arithmetic import format_rate
from paygate_common.auth import CurrentPrincipal
from paygate_common.db import SessionDep
from paygate_common.errors import business_rule
from paygate_common.money import MAX_AMOUNT_MINOR

rates_router = APIRouter(prefix="/rates", tags=["rates"])
convert_router = APIRouter(tags=["rates"])

# 400, 401 and 403 are documented by the service kit (`document_problems`); these add codes.
PROBLEMS: dict[int | str, dict[str, Any]] = {
    422: business_rule(
        "rate_unavailable",
        "invalid_date_range",
        description="Unknown currency (`unknown_currency`), no rate for it on that date, or a "
        "date in the future, a range that ends before it starts or is longer than allowed",
    ),
}

BaseQuery = Annotated[
    str,
    Query(max_length=8, description="Base currency, e.g. `usd`", json_schema_extra=CURRENCY_SCHEMA),
]
SymbolsQuery = Annotated[
    str | None,
    Query(
        max_length=400,
        description="Comma-separated currencies; all when omitted",
        json_schema_extra=SYMBOLS_SCHEMA,
    ),
]
CurrencyQuery = Annotated[
    str, Query(max_length=8, description="e.g. `eur`", json_schema_extra=CURRENCY_SCHEMA)
]


@rates_router.get(
    "/latest",
    response_model=RatesRead,
    summary="The newest reference rates from a base currency",
    responses=PROBLEMS,
)
async def latest_rates(
    _: CurrentPrincipal,
    reader: ReaderDep,
    now: NowDep,
    policy: PolicyDep,
    base: BaseQuery = "eur",
    symbols: SymbolsQuery = None,
) -> RatesRead:
    base_code = domain.parse_currency(base, field_name="base")
    wanted = domain.parse_symbols(symbols)
    snapshot = await reader.snapshot(now.date(), latest=True)
    return RatesRead.of(
        domain.rate_table(snapshot, base=base_code, symbols=wanted, now=now, policy=policy)
    )


@rates_router.get(
    "/history",
    response_model=HistoryRead,
    summary="One currency pair's rate on every ECB publication day in a range (oldest first)",
    responses=PROBLEMS,
)
async def rate_history(
    _: CurrentPrincipal,
    session: SessionDep,
    now: NowDep,
    settings: SettingsDep,
    symbol: CurrencyQuery,
    from_: Annotated[
        str,
        Query(alias="from", max_length=10, description="First day", json_schema_extra=DAY_SCHEMA),
    ],
    to: Annotated[
        str | None,
        Query(max_length=10, description="Last day (today)", json_schema_extra=DAY_SCHEMA),
    ] = None,
    base: BaseQuery = "eur",
) -> HistoryRead:
    base_code = domain.parse_currency(base, field_name="base")
    symbol_code = domain.parse_currency(symbol, field_name="symbol")
    today = now.date()
    start = parse_day(from_, name="from", today=today)
    end = parse_day(to, name="to", today=today) if to else today
    series = await history.pair_history(
        session=session,
        base=base_code,
        symbol=symbol_code,
        start=start,
        end=end,
        max_days=settings.history_max_days,
    )
    return HistoryRead.model_validate(
        {
            "base": base_code,
            "symbol": symbol_code,
            "from": start,
            "to": end,
            "items": [HistoryPoint(date=d, rate=format_rate(r)) for d, r in series],
        }
    )


@rates_router.get(
    "/{date}",
    response_model=RatesRead,
    summary="The rates published on or before a date (with the date they are from)",
    responses=PROBLEMS,
)
async def rates_on(
    date: Annotated[
        str,
        Path(max_length=10, description="A day, e.g. 2010-06-15", json_schema_extra=DAY_SCHEMA),
    ],
    _: CurrentPrincipal,
    reader: ReaderDep,
    now: NowDep,
    policy: PolicyDep,
    base: BaseQuery = "eur",
    symbols: SymbolsQuery = None,
) -> RatesRead:
    requested = parse_day(date, name="date", today=now.date())
    base_code = domain.parse_currency(base, field_name="base")
    wanted = domain.parse_symbols(symbols)
    snapshot = await reader.snapshot(requested)
    # Stale relative to the day asked about: a 2010 rate is not stale for a 2010 question.
    as_of = min(now, datetime.combine(requested + timedelta(days=1), time(0), UTC))
    return RatesRead.of(
        domain.rate_table(snapshot, base=base_code, symbols=wanted, now=as_of, policy=policy)
    )


@convert_router.get(
    "/convert",
    response_model=ConversionRead,
    response_model_by_alias=True,
    summary="Convert an amount in minor units at the newest mid rate (half-even rounding)",
    responses=PROBLEMS,
)
async def convert_amount(
    _: CurrentPrincipal,
    reader: ReaderDep,
    now: NowDep,
    policy: PolicyDep,
    from_: Annotated[
        str,
        Query(
            alias="from", max_length=8, description="e.g. `usd`", json_schema_extra=CURRENCY_SCHEMA
        ),
    ],
    to: CurrencyQuery,
    amount: Annotated[int, Query(gt=0, le=MAX_AMOUNT_MINOR, description="Minor units of from")],
) -> ConversionRead:
    source = domain.parse_currency(from_, field_name="from")
    target = domain.parse_currency(to, field_name="to")
    snapshot = await reader.snapshot(now.date(), latest=True)
    return ConversionRead.of(
        domain.convert(
            snapshot,
            from_currency=source,
            to_currency=target,
            amount=amount,
            now=now,
            policy=policy,
        )
    )
