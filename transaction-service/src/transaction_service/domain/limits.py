"""Limits per user and currency: reserve before a charge, release when it fails, keep when paid."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from paygate_common.limits import LimitExceeded
from transaction_service.domain.errors import ReservationConflict, ReservationNotFound
from transaction_service.settings import LimitRule, Settings
from transaction_service.store import limits as store

LIMITS_CONFIG_KEY = "limits"


class ReservationStatus(StrEnum):
    ACTIVE = "active"  # counted: the charge may still happen
    CONSUMED = "consumed"  # counted for good: the payment captured
    RELEASED = "released"  # not counted: the payment failed or was cancelled


# The one transition table of a reservation.
RESERVATION_TRANSITIONS: dict[ReservationStatus, frozenset[ReservationStatus]] = {
    ReservationStatus.ACTIVE: frozenset({ReservationStatus.CONSUMED, ReservationStatus.RELEASED}),
    ReservationStatus.CONSUMED: frozenset(),
    ReservationStatus.RELEASED: frozenset(),
}


def allowed_from(target: ReservationStatus) -> set[str]:
    return {s.value for s, targets in RESERVATION_TRANSITIONS.items() if target in targets}


@dataclass(frozen=True)
class Limits:
    per_transaction: int | None
    daily: int | None
    monthly: int | None


def limits_for(
    settings: Settings, currency: str, config: Any = None, user_id: uuid.UUID | None = None
) -> Limits:
    """Settings' defaults, overridden per currency by settings.limits, then the `limits` config.

    The config value is admin-service's `LimitsConfig`: `{"defaults": [{"currency", ...rule}],
    "overrides": {"<user id>": [{"currency", ...rule}]}}`; a user's override wins.
    """
    defaults = LimitRule(
        per_transaction=settings.limit_per_transaction,
        daily=settings.limit_daily,
        monthly=settings.limit_monthly,
    )
    overrides: list[LimitRule] = []
    if currency in settings.limits:
        overrides.append(settings.limits[currency])
    if isinstance(config, dict):
        per_user = (config.get("overrides") or {}).get(str(user_id), [])
        for rules in (config.get("defaults") or [], per_user):
            for raw in rules:
                if raw.get("currency") == currency:
                    overrides.append(_config_rule(raw))
    values = defaults.model_dump()
    for override in overrides:
        values.update(override.model_dump(exclude_unset=True))
    return Limits(**values)


def _config_rule(rule: dict[str, Any]) -> LimitRule:
    return LimitRule.model_validate({k: v for k, v in rule.items() if k != "currency"})


def validate_limits_config(value: Any) -> None:
    if not isinstance(value, dict):
        raise ValueError("the limits config must be {defaults: [...], overrides: {...}}")
    for rule in value.get("defaults") or []:
        _config_rule(rule)
    for rules in (value.get("overrides") or {}).values():
        for rule in rules:
            _config_rule(rule)


def periods(now: datetime) -> tuple[date, date]:
    """The UTC day and month a reservation counts in."""
    day = now.astimezone(UTC).date()
    return day, day.replace(day=1)


@dataclass(frozen=True)
class Reservation:
    reference_id: uuid.UUID
    user_id: uuid.UUID
    currency: str
    amount: int
    status: str
    created_at: datetime
    created: bool  # False when an earlier identical request made it


def _reservation(row: Any, *, created: bool) -> Reservation:
    return Reservation(
        reference_id=row.reference_id,
        user_id=row.user_id,
        currency=row.currency,
        amount=row.amount,
        status=row.status,
        created_at=row.created_at,
        created=created,
    )


class LimitsConfigCache:
    """The limits config as this process last read it, with its version.

    `reserve` computes the maxima from it and its one statement writes only if the stored
    config still has that version; otherwise the config is read again and the statement
    re-run. A stale cache therefore costs one retry, never a reservation under an old limit.
    """

    NEVER_READ = -1  # no stored version is negative: the first reservation reads the config

    def __init__(self) -> None:
        self.version: int | None = self.NEVER_READ
        self.value: Any = None


async def reserve(
    *,
    session: AsyncSession,
    settings: Settings,
    reference_id: uuid.UUID,
    user_id: uuid.UUID,
    amount: int,
    currency: str,
    now: datetime | None = None,
    config: LimitsConfigCache | None = None,
) -> Reservation:
    """Count `amount` against the user's limits, once per reference; LimitExceeded if over.

    One statement in the common case (`store.reserve_within`: the row and both counters);
    a raised LimitExceeded rolls the caller's unit of work back, the row and a counter too.
    """
    now = now or datetime.now(UTC)
    day, month = periods(now)
    config = config or LimitsConfigCache()
    for _ in range(3):
        # This request's view: concurrent requests may refresh the shared cache meanwhile.
        version, value = config.version, config.value
        limits = limits_for(settings, currency, value, user_id)
        row = await store.reserve_within(
            session,
            config_key=LIMITS_CONFIG_KEY,
            config_version=version,
            reference_id=reference_id,
            user_id=user_id,
            currency=currency,
            amount=amount,
            day=day,
            month=month,
            status=ReservationStatus.ACTIVE.value,
            per_transaction=limits.per_transaction,
            daily=limits.daily,
            monthly=limits.monthly,
        )
        if row.config_version == version:
            break
        # admin-service changed the limits since this process read them: read them again.
        config.version, config.value = await store.limits_config(session, LIMITS_CONFIG_KEY)
    else:
        raise ReservationConflict("The limits config keeps changing; try again")
    if row.reference_id is None:
        existing = await store.fetch_reservation(session, reference_id)
        if (existing.user_id, existing.currency, existing.amount) != (user_id, currency, amount):
            raise ReservationConflict(
                f"Reference {reference_id} already reserved {existing.amount} {existing.currency}"
            )
        return _reservation(existing, created=False)
    if limits.per_transaction is not None and amount > limits.per_transaction:
        raise LimitExceeded(
            f"The amount exceeds the per-transaction limit of {limits.per_transaction} {currency}",
            limit="per_transaction",
            maximum=limits.per_transaction,
            remaining=limits.per_transaction,
        )
    for period, start, maximum, total in (
        ("day", day, limits.daily, row.day_total),
        ("month", month, limits.monthly, row.month_total),
    ):
        if total is None:
            assert maximum is not None
            used = await store.counter_value(
                session, user_id=user_id, currency=currency, period=period, period_start=start
            )
            label = "daily" if period == "day" else "monthly"
            raise LimitExceeded(
                f"The {label} limit of {maximum} {currency} would be exceeded",
                limit=label,
                maximum=maximum,
                remaining=max(0, maximum - used),
            )
    return _reservation(row, created=True)


async def release(*, session: AsyncSession, reference_ids: list[uuid.UUID]) -> bool:
    """Give an active reservation's amount back (the charge failed or was cancelled)."""
    moved = await store.move_reservation(
        session,
        reference_ids,
        to=ReservationStatus.RELEASED.value,
        allowed_from=allowed_from(ReservationStatus.RELEASED),
    )
    if moved is None:
        return False
    await store.subtract_from_counters(
        session,
        user_id=moved.user_id,
        currency=moved.currency,
        day=moved.day,
        month=moved.month,
        amount=moved.old_amount,
    )
    return True


async def consume(*, session: AsyncSession, reference_ids: list[uuid.UUID], captured: int) -> bool:
    """Keep an active reservation for good at what was captured (a partial capture frees the rest)."""
    moved = await store.move_reservation(
        session,
        reference_ids,
        to=ReservationStatus.CONSUMED.value,
        allowed_from=allowed_from(ReservationStatus.CONSUMED),
        cap_amount=max(captured, 1),
    )
    if moved is None:
        return False
    unused = moved.old_amount - captured
    if unused > 0:
        await store.subtract_from_counters(
            session,
            user_id=moved.user_id,
            currency=moved.currency,
            day=moved.day,
            month=moved.month,
            amount=unused,
        )
    return True


async def release_orphans(
    *, session: AsyncSession, older_than_seconds: float, limit: int
) -> list[uuid.UUID]:
    """Release reservations whose charge never showed up (see the setting's comment)."""
    orphans = await store.orphaned_reservations(
        session, older_than_seconds=older_than_seconds, limit=limit
    )
    for reference_id in orphans:
        await release(session=session, reference_ids=[reference_id])
    return orphans


async def release_reference(*, session: AsyncSession, reference_id: uuid.UUID) -> Reservation:
    """The internal DELETE: release (if still active) and return the reservation."""
    row = await store.fetch_reservation(session, reference_id)
    if row is None:
        raise ReservationNotFound(f"No reservation for {reference_id}")
    await release(session=session, reference_ids=[reference_id])
    row = await store.fetch_reservation(session, reference_id)
    return _reservation(row, created=False)
