"""Posting payment events to the ledger: one balanced journal entry per event that moved money."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from paygate_common.events import PaymentEvent, PaymentStatus, RefundEvent
from paygate_common.events.models import RefundStatus
from transaction_service.domain import limits
from transaction_service.domain.fees import FeeSchedule, FeeTerms
from transaction_service.domain.postings import (
    PaymentTotals,
    Phase,
    apply_event,
    apply_refunds,
    captured_of,
    movements,
)
from transaction_service.settings import Settings
from transaction_service.store import config as config_store
from transaction_service.store import ledger as store

log = logging.getLogger("transaction_service.ledger")

FEES_CONFIG_KEY = "fees"
_SCHEDULE_CACHE = "fee_schedule"


@dataclass(frozen=True)
class Posted:
    """What one event did: the entry it produced (None: nothing moved) and whose it is."""

    entry_id: int | None
    user_id: uuid.UUID
    changed: bool


async def fee_schedule(session: AsyncSession, settings: Settings) -> FeeSchedule:
    """The schedule in force (settings + the `fees` config), read once per unit of work."""
    cached: FeeSchedule | None = session.info.get(_SCHEDULE_CACHE)
    if cached is None:
        config = await config_store.config_value(session, FEES_CONFIG_KEY)
        cached = FeeSchedule.from_settings(settings, config)
        session.info[_SCHEDULE_CACHE] = cached
    return cached


def _totals(row: Any) -> PaymentTotals:
    return PaymentTotals(
        phase=Phase(row.phase),
        status=row.status,
        pending=row.amount_pending,
        captured=row.amount_captured,
        refunded=row.amount_refunded,
        fee=row.fee,
        fee_refunded=row.fee_refunded,
    )


async def post_payment_event(
    *,
    session: AsyncSession,
    settings: Settings,
    event: PaymentEvent,
    event_id: uuid.UUID,
    occurred_at: datetime,
) -> Posted:
    """Apply one payment event: update the payment's row and post the difference, if any."""
    row = await store.create_transaction(
        session,
        id=event.payment_id,
        user_id=event.user_id,
        order_id=event.order_id,
        provider=event.provider,
        currency=event.currency,
        capture_method=event.capture_method,
        amount=event.amount,
        status=event.status.value,
        phase=Phase.OPEN.value,
        last_event_at=occurred_at,
    )
    if (row.user_id, row.currency) != (event.user_id, event.currency):
        log.error(
            "payment %s event %s names user/currency %s/%s, the ledger has %s/%s: not posted",
            event.payment_id,
            event_id,
            event.user_id,
            event.currency,
            row.user_id,
            row.currency,
        )
        return Posted(None, row.user_id, False)

    before = _totals(row)
    terms = await _terms(session, settings, row)
    refunds_total = 0
    if captured_of(event) > 0 or before.captured > 0:
        refunds_total = await store.succeeded_refunds_total(session, row.id)
    after = apply_event(before, event, terms, refunds_total=refunds_total)
    updates: dict[str, Any] = {}
    if event.order_id is not None and row.order_id is None:
        updates["order_id"] = event.order_id
    entry_id = await _post(
        session,
        settings,
        row,
        before,
        after,
        terms,
        event_id=event_id,
        occurred_at=occurred_at,
        description=f"payment.{event.status.value}",
        reported=(captured_of(event), max(event.amount_refunded, refunds_total)),
        updates=updates,
    )
    await _settle_reservation(session, event, before, after)
    return Posted(entry_id, row.user_id, after != before)


async def post_refund_event(
    *,
    session: AsyncSession,
    settings: Settings,
    event: RefundEvent,
    event_id: uuid.UUID,
    occurred_at: datetime,
) -> Posted:
    """Record a refund's state; a succeeded one refunds up to the payment's refunds' sum."""
    status = RefundStatus(event.status)
    await store.record_refund(
        session,
        refund_id=event.refund_id,
        payment_id=event.payment_id,
        amount=event.amount,
        status=status.value,
        allowed_from=refund_allowed_from(status),
    )
    if status is not RefundStatus.SUCCEEDED:
        return Posted(None, event.user_id, False)
    row = await store.lock_transaction(session, event.payment_id)
    if row is None:
        # The refund overtook every event of its payment: the capture will bring it along.
        return Posted(None, event.user_id, False)
    before = _totals(row)
    terms = await _terms(session, settings, row)
    refunds_total = await store.succeeded_refunds_total(session, row.id)
    after = apply_refunds(before, refunds_total, terms)
    entry_id = await _post(
        session,
        settings,
        row,
        before,
        after,
        terms,
        event_id=event_id,
        occurred_at=occurred_at,
        description=f"refund.{status.value}",
        reported=(row.reported_captured, refunds_total),
        updates={},
    )
    return Posted(entry_id, row.user_id, after != before)


# The one transition table of a refund as the ledger records it.
REFUND_TRANSITIONS: dict[RefundStatus, frozenset[RefundStatus]] = {
    RefundStatus.PENDING: frozenset({RefundStatus.SUCCEEDED, RefundStatus.FAILED}),
    RefundStatus.SUCCEEDED: frozenset(),
    RefundStatus.FAILED: frozenset(),
}


def refund_allowed_from(target: RefundStatus) -> set[str]:
    return {s.value for s, targets in REFUND_TRANSITIONS.items() if target in targets}


async def _terms(session: AsyncSession, settings: Settings, row: Any) -> FeeTerms:
    """The payment's own terms once captured; the schedule in force before."""
    if row.fee_basis_points is not None:
        return FeeTerms(row.fee_basis_points, row.fee_fixed, row.fee_returned_on_refund)
    return (await fee_schedule(session, settings)).terms_for(row.provider, row.currency)


async def _post(
    session: AsyncSession,
    settings: Settings,
    row: Any,
    before: PaymentTotals,
    after: PaymentTotals,
    terms: FeeTerms,
    *,
    event_id: uuid.UUID,
    occurred_at: datetime,
    description: str,
    reported: tuple[int, int],
    updates: dict[str, Any],
) -> int | None:
    """Post the difference between `before` and `after` as one entry and update the payment."""
    lines = movements(
        before, after, merchant=str(row.user_id), provider=row.provider, currency=row.currency
    )
    entry_id = None
    if lines:
        ids = await store.account_ids(
            session,
            [m.account for m in lines],
            merchant_no_negative=settings.merchant_balance_must_not_go_negative,
        )
        entry_id = await store.insert_entry(
            session,
            event_id=event_id,
            kind="payment",
            payment_id=row.id,
            user_id=row.user_id,
            currency=row.currency,
            captured=after.captured - before.captured,
            refunded=after.refunded - before.refunded,
            fees=(after.fee - before.fee) - (after.fee_refunded - before.fee_refunded),
            description=description,
        )
        if entry_id is None:
            # The same event id was posted before (the inbox should have caught it): move nothing.
            log.warning("event %s already has a journal entry; skipped", event_id)
            return None
        await store.insert_lines(
            session, entry_id, [(ids[m.account], m.account.currency, m.amount) for m in lines]
        )
        await store.check_balance_per_statement(session)

    if after != before:
        updates.update(
            status=after.status,
            phase=after.phase.value,
            amount_pending=after.pending,
            amount_captured=after.captured,
            amount_refunded=after.refunded,
            fee=after.fee,
            fee_refunded=after.fee_refunded,
        )
        if after.captured > 0 and row.fee_basis_points is None:
            updates.update(
                fee_basis_points=terms.basis_points,
                fee_fixed=terms.fixed,
                fee_returned_on_refund=terms.returned_on_refund,
            )
    # What payment-service reported, posted or not: reconciliation holds the ledger to it.
    if reported[0] > row.reported_captured or reported[1] > row.reported_refunded:
        updates["reported_captured"] = max(row.reported_captured, reported[0])
        updates["reported_refunded"] = max(row.reported_refunded, reported[1])
    if updates:
        await store.update_transaction(session, row.id, last_event_at=occurred_at, **updates)
    return entry_id


async def _settle_reservation(
    session: AsyncSession, event: PaymentEvent, before: PaymentTotals, after: PaymentTotals
) -> None:
    """A failed or cancelled charge gives its limit back; a captured one keeps what it took."""
    references = [r for r in (event.order_id, event.payment_id) if r is not None]
    if after.captured > 0 and before.captured == 0:
        await limits.consume(session=session, reference_ids=references, captured=after.captured)
    elif event.status in (PaymentStatus.FAILED, PaymentStatus.CANCELLED) and after.captured == 0:
        await limits.release(session=session, reference_ids=references)
