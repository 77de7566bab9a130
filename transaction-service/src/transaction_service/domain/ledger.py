"""Posting payment events to the ledger: one balanced journal entry per event that moved money."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from paygate_common.events import PaymentEvent, PaymentStatus, RefundEvent
from paygate_common.events.models import RefundStatus
from transaction_service.domain import limits
from transaction_service.domain.fees import FeeSchedule, FeeTerms
from transaction_service.domain.postings import (
    Movement,
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


def _totals(row: Mapping[str, Any]) -> PaymentTotals:
    return PaymentTotals(
        phase=Phase(row["phase"]),
        status=row["status"],
        pending=row["amount_pending"],
        captured=row["amount_captured"],
        refunded=row["amount_refunded"],
        fee=row["fee"],
        fee_refunded=row["fee_refunded"],
    )


@dataclass(frozen=True)
class Posting:
    """What one event does to its payment, decided before anything is written.

    `lines` (empty: nothing moved) become one journal entry with `entry`'s columns; `updates`
    are the payment row's new column values (empty: the row is left alone); `reservation`
    says whether the payment's limit reservation is consumed (`captured` kept) or released.
    """

    payment_id: uuid.UUID
    user_id: uuid.UUID
    event_id: uuid.UUID
    occurred_at: datetime
    lines: list[Movement]
    entry: dict[str, Any] | None
    updates: dict[str, Any]
    reservation: tuple[str, list[uuid.UUID], int] | None = None


def _references(event: PaymentEvent) -> list[uuid.UUID]:
    return [r for r in (event.order_id, event.payment_id) if r is not None]


def needs_refunds_total(event: PaymentEvent, row: Mapping[str, Any]) -> bool:
    """Only a captured payment's refunds can move anything: skip the query before that."""
    return captured_of(event) > 0 or row["amount_captured"] > 0


def plan_payment_event(
    row: Mapping[str, Any],
    event: PaymentEvent,
    terms: FeeTerms,
    *,
    refunds_total: int,
    event_id: uuid.UUID,
    occurred_at: datetime,
) -> Posting:
    """The one rule for a payment event against the payment's row (both consumer paths use it)."""
    before = _totals(row)
    after = apply_event(before, event, terms, refunds_total=refunds_total)
    updates: dict[str, Any] = {}
    if event.order_id is not None and row["order_id"] is None:
        updates["order_id"] = event.order_id
    reservation: tuple[str, list[uuid.UUID], int] | None = None
    # A failed or cancelled charge gives its limit back; a captured one keeps what it took.
    if after.captured > 0 and before.captured == 0:
        reservation = ("consume", _references(event), after.captured)
    elif event.status in (PaymentStatus.FAILED, PaymentStatus.CANCELLED) and after.captured == 0:
        reservation = ("release", _references(event), 0)
    return _plan(
        row,
        before,
        after,
        terms,
        event_id=event_id,
        occurred_at=occurred_at,
        description=f"payment.{event.status.value}",
        reported=(captured_of(event), max(event.amount_refunded, refunds_total)),
        updates=updates,
        reservation=reservation,
    )


def _plan(
    row: Mapping[str, Any],
    before: PaymentTotals,
    after: PaymentTotals,
    terms: FeeTerms,
    *,
    event_id: uuid.UUID,
    occurred_at: datetime,
    description: str,
    reported: tuple[int, int],
    updates: dict[str, Any],
    reservation: tuple[str, list[uuid.UUID], int] | None = None,
) -> Posting:
    """The difference between `before` and `after` as lines, an entry and the row's updates."""
    lines = movements(
        before,
        after,
        merchant=str(row["user_id"]),
        provider=row["provider"],
        currency=row["currency"],
    )
    entry = None
    if lines:
        entry = {
            "event_id": event_id,
            "kind": "payment",
            "payment_id": row["id"],
            "user_id": row["user_id"],
            "currency": row["currency"],
            "captured": after.captured - before.captured,
            "refunded": after.refunded - before.refunded,
            "fees": (after.fee - before.fee) - (after.fee_refunded - before.fee_refunded),
            "description": description,
        }
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
        if after.captured > 0 and row["fee_basis_points"] is None:
            updates.update(
                fee_basis_points=terms.basis_points,
                fee_fixed=terms.fixed,
                fee_returned_on_refund=terms.returned_on_refund,
            )
    # What payment-service reported, posted or not: reconciliation holds the ledger to it.
    if reported[0] > row["reported_captured"] or reported[1] > row["reported_refunded"]:
        updates["reported_captured"] = max(row["reported_captured"], reported[0])
        updates["reported_refunded"] = max(row["reported_refunded"], reported[1])
    return Posting(
        payment_id=row["id"],
        user_id=row["user_id"],
        event_id=event_id,
        occurred_at=occurred_at,
        lines=lines,
        entry=entry,
        updates=updates,
        reservation=reservation,
    )


def _mismatch(row: Mapping[str, Any], event: PaymentEvent, event_id: uuid.UUID) -> bool:
    if (row["user_id"], row["currency"]) == (event.user_id, event.currency):
        return False
    log.error(
        "payment %s event %s names user/currency %s/%s, the ledger has %s/%s: not posted",
        event.payment_id,
        event_id,
        event.user_id,
        event.currency,
        row["user_id"],
        row["currency"],
    )
    return True


def _new_transaction(event: PaymentEvent, occurred_at: datetime) -> dict[str, Any]:
    return {
        "id": event.payment_id,
        "user_id": event.user_id,
        "order_id": event.order_id,
        "provider": event.provider,
        "currency": event.currency,
        "capture_method": event.capture_method,
        "amount": event.amount,
        "status": event.status.value,
        "phase": Phase.OPEN.value,
        "last_event_at": occurred_at,
    }


async def post_payment_event(
    *,
    session: AsyncSession,
    settings: Settings,
    event: PaymentEvent,
    event_id: uuid.UUID,
    occurred_at: datetime,
) -> Posted:
    """Apply one payment event: update the payment's row and post the difference, if any."""
    row = dict(
        (await store.create_transaction(session, **_new_transaction(event, occurred_at)))._mapping
    )
    if _mismatch(row, event, event_id):
        return Posted(None, row["user_id"], False)
    terms = await _terms(session, settings, row)
    refunds_total = 0
    if needs_refunds_total(event, row):
        refunds_total = await store.succeeded_refunds_total(session, row["id"])
    posting = plan_payment_event(
        row, event, terms, refunds_total=refunds_total, event_id=event_id, occurred_at=occurred_at
    )
    entry_id = await _write(session, settings, posting)
    await _settle_reservation(session, posting)
    return Posted(entry_id, row["user_id"], bool(posting.updates))


class AlreadyPosted(Exception):
    """An event of the batch already has a journal entry (the inbox should have caught it).

    Raised by the batch path, whose in-memory view of the payments would then be wrong: the
    consumer runner rolls the batch back and applies it event by event, where such an event
    moves nothing (`_write`).
    """


async def post_payment_events(
    *,
    session: AsyncSession,
    settings: Settings,
    events: Sequence[tuple[PaymentEvent, uuid.UUID, datetime]],
) -> list[Posting]:
    """`post_payment_event` for a run of events, with one statement per table for the run.

    The payments' rows are locked (in id order) and the missing ones inserted once; each event
    is planned in order against the row as the previous events left it (in memory), so the
    postings are exactly the ones `post_payment_event` would make one by one; then one insert
    of the entries, one of the lines, one update of the rows.
    """
    if not events:
        return []
    payment_ids = list(dict.fromkeys(event.payment_id for event, _, _ in events))
    rows = await store.lock_transactions(session, payment_ids)
    new: dict[uuid.UUID, dict[str, Any]] = {}
    for event, _, occurred_at in events:
        if event.payment_id not in rows and event.payment_id not in new:
            new[event.payment_id] = _new_transaction(event, occurred_at)
    if new:
        rows.update(await store.insert_transactions(session, list(new.values())))
        late = [pid for pid in new if pid not in rows]
        if late:  # another consumer inserted them meanwhile: wait for its locks
            rows.update(await store.lock_transactions(session, late))
    refunds = await store.succeeded_refunds_totals(
        session,
        [pid for pid, row in rows.items() if row["amount_captured"] > 0]
        + [event.payment_id for event, _, _ in events if captured_of(event) > 0],
    )
    postings: list[Posting] = []
    touched: dict[uuid.UUID, datetime] = {}
    for event, event_id, occurred_at in events:
        row = rows[event.payment_id]
        if _mismatch(row, event, event_id):
            continue
        terms = await _terms(session, settings, row)
        refunds_total = refunds.get(row["id"], 0) if needs_refunds_total(event, row) else 0
        posting = plan_payment_event(
            row,
            event,
            terms,
            refunds_total=refunds_total,
            event_id=event_id,
            occurred_at=occurred_at,
        )
        if posting.updates:
            row.update(posting.updates)
            seen = touched.get(row["id"])
            touched[row["id"]] = occurred_at if seen is None else max(seen, occurred_at)
        postings.append(posting)
    with_lines = [p for p in postings if p.entry is not None]
    if with_lines:
        ids = await store.account_ids(
            session,
            [m.account for p in with_lines for m in p.lines],
            merchant_no_negative=settings.merchant_balance_must_not_go_negative,
        )
        entry_ids = await store.insert_entries(session, [p.entry for p in with_lines if p.entry])
        if len(entry_ids) != len(with_lines):
            raise AlreadyPosted(f"{len(with_lines) - len(entry_ids)} event(s) already posted")
        await store.check_balance_per_statement(session)
        await store.insert_lines_of_entries(
            session,
            [
                (entry_ids[p.event_id], ids[m.account], m.account.currency, m.amount)
                for p in with_lines
                for m in p.lines
            ],
        )
    if touched:
        await store.update_transactions(
            session, [(rows[pid], last_event_at) for pid, last_event_at in touched.items()]
        )
    for posting in postings:
        await _settle_reservation(session, posting)
    return postings


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
    locked = await store.lock_transaction(session, event.payment_id)
    if locked is None:
        # The refund overtook every event of its payment: the capture will bring it along.
        return Posted(None, event.user_id, False)
    row = dict(locked._mapping)
    before = _totals(row)
    terms = await _terms(session, settings, row)
    refunds_total = await store.succeeded_refunds_total(session, row["id"])
    after = apply_refunds(before, refunds_total, terms)
    posting = _plan(
        row,
        before,
        after,
        terms,
        event_id=event_id,
        occurred_at=occurred_at,
        description=f"refund.{status.value}",
        reported=(row["reported_captured"], refunds_total),
        updates={},
    )
    entry_id = await _write(session, settings, posting)
    return Posted(entry_id, row["user_id"], bool(posting.updates))


# The one transition table of a refund as the ledger records it.
REFUND_TRANSITIONS: dict[RefundStatus, frozenset[RefundStatus]] = {
    RefundStatus.PENDING: frozenset({RefundStatus.SUCCEEDED, RefundStatus.FAILED}),
    RefundStatus.SUCCEEDED: frozenset(),
    RefundStatus.FAILED: frozenset(),
}


def refund_allowed_from(target: RefundStatus) -> set[str]:
    return {s.value for s, targets in REFUND_TRANSITIONS.items() if target in targets}


async def _terms(session: AsyncSession, settings: Settings, row: Mapping[str, Any]) -> FeeTerms:
    """The payment's own terms once captured; the schedule in force before."""
    if row["fee_basis_points"] is not None:
        return FeeTerms(row["fee_basis_points"], row["fee_fixed"], row["fee_returned_on_refund"])
    return (await fee_schedule(session, settings)).terms_for(row["provider"], row["currency"])


async def _write(session: AsyncSession, settings: Settings, posting: Posting) -> int | None:
    """One event's posting: its entry and lines, then the payment's row."""
    entry_id = None
    if posting.entry is not None:
        ids = await store.account_ids(
            session,
            [m.account for m in posting.lines],
            merchant_no_negative=settings.merchant_balance_must_not_go_negative,
        )
        entry_id = await store.insert_entry(session, **posting.entry)
        if entry_id is None:
            # The same event id was posted before (the inbox should have caught it): move nothing.
            log.warning("event %s already has a journal entry; skipped", posting.event_id)
            return None
        await store.insert_lines(
            session,
            entry_id,
            [(ids[m.account], m.account.currency, m.amount) for m in posting.lines],
        )
        await store.check_balance_per_statement(session)
    if posting.updates:
        await store.update_transaction(
            session, posting.payment_id, last_event_at=posting.occurred_at, **posting.updates
        )
    return entry_id


async def _settle_reservation(session: AsyncSession, posting: Posting) -> None:
    if posting.reservation is None:
        return
    action, references, captured = posting.reservation
    if action == "consume":
        await limits.consume(session=session, reference_ids=references, captured=captured)
    else:
        await limits.release(session=session, reference_ids=references)
