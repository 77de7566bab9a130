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
from transaction_service.store import config as config_store
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


async def reserve(
    *,
    session: AsyncSession,
    settings: Settings,
    reference_id: uuid.UUID,
    user_id: uuid.UUID,
    amount: int,
    currency: str,
    now: datetime | None = None,
) -> Reservation:
    """Count `amount` against the user's limits, once per reference; LimitExceeded if over."""
    now = now or datetime.now(UTC)
    day, month = periods(now)
    row = await store.insert_reservation(
        session,
        reference_id=reference_id,
        user_id=user_id,
        currency=currency,
        amount=amount,
        day=day,
        month=month,
        status=ReservationStatus.ACTIVE.value,
    )
    if row is None:
        existing = await store.fetch_reservation(session, reference_id)
        if (existing.user_id, existing.currency, existing.amount) != (user_id, currency, amount):
            raise ReservationConflict(
                f"Reference {reference_id} already reserved {existing.amount} {existing.currency}"
            )
        return _reservation(existing, created=False)

    config = await config_store.config_value(session, LIMITS_CONFIG_KEY)
    limits = limits_for(settings, currency, config, user_id)
    if limits.per_transaction is not None and amount > limits.per_transaction:
        raise LimitExceeded(
            f"The amount exceeds the per-transaction limit of {limits.per_transaction} {currency}",
            limit="per_transaction",
            maximum=limits.per_transaction,
            remaining=limits.per_transaction,
        )
    # Day first, then month: every reservation locks the counters in the same order.
    for period, start, maximum in (("day", day, limits.daily), ("month", month, limits.monthly)):
        total = await store.add_to_counter(
            session,
            user_id=user_id,
            currency=currency,
            period=period,
            period_start=start,
            amount=amount,
            maximum=maximum,
        )
        if total is None:
            assert maximum is not None
            used = await store.counter_value(
                session, user_id=user_id, currency=currency, period=period, period_start=start
            )
            label = "daily" if period == "day" else "monthly"
            # Raising rolls the unit of work back: the reservation row and the other counter too.
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
