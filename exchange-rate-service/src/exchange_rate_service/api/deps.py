"""Dependencies of the FX API: the clock, the snapshot reader, the staleness policy, path parsing."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Annotated

from fastapi import Depends, Path

from exchange_rate_service.domain.errors import InvalidDateRange, QuoteNotFound
from exchange_rate_service.domain.rates import StalenessPolicy
from exchange_rate_service.settings import Settings
from exchange_rate_service.store.snapshots import SnapshotReader
from paygate_common.deps import SettingsDep as SharedSettingsDep
from paygate_common.deps import app_state

SettingsDep = SharedSettingsDep[Settings]
ReaderDep = Annotated[SnapshotReader, Depends(app_state("rates_reader"))]


def get_now(clock: Annotated[Callable[[], datetime], Depends(app_state("clock"))]) -> datetime:
    """The app's clock (tests inject one), read once per request."""
    return clock()


def policy_for(settings: Settings) -> StalenessPolicy:
    return StalenessPolicy(
        ecb_max_age=timedelta(seconds=settings.stale_after_seconds),
        operator_max_age=timedelta(seconds=settings.operator_rate_stale_after_seconds),
    )


def get_policy(settings: SettingsDep) -> StalenessPolicy:
    return policy_for(settings)


NowDep = Annotated[datetime, Depends(get_now)]
PolicyDep = Annotated[StalenessPolicy, Depends(get_policy)]


def parse_day(value: str, *, name: str, today: date) -> date:
    """An ISO date no later than today, or 422 `invalid_date_range`."""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise InvalidDateRange(f"{name} must be a date like 2010-06-15", field=name) from None
    if len(value) != 10:
        raise InvalidDateRange(f"{name} must be a date like 2010-06-15", field=name)
    if day > today:
        raise InvalidDateRange(f"{name} is in the future: no rate is published yet", field=name)
    return day


def quote_id_path(
    quote_id: Annotated[str, Path(description="The quote's id (UUID)")],
) -> uuid.UUID:
    try:
        return uuid.UUID(quote_id)
    except ValueError:
        # An id that cannot exist is simply not found; same answer as someone else's quote.
        raise QuoteNotFound("No such quote") from None


QuoteIdPath = Annotated[uuid.UUID, Depends(quote_id_path)]
