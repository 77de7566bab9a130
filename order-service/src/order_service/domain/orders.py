"""Placing, reading and settling orders; every function runs in the caller's unit of work."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from order_service.domain.errors import (
    InvalidOrderState,
    OrderNotFound,
    RefundExceedsOrder,
)
from order_service.domain.payment_methods import PaymentMethods
from order_service.domain.status import (
    CANCELLABLE,
    OrderStatus,
    allowed_from,
    status_for_payment,
)
from order_service.events.publishing import (
    order_created,
    publish_order_cancelled,
    publish_refund_requested,
)
from order_service.store import orders as store
from order_service.store.orders import OrderRecord
from paygate_common.auth import Principal, owned_or_raise
from paygate_common.events import PaymentEvent
from paygate_common.internal.users import PaymentContextRead
from paygate_common.limits import LimitsClient, LimitsUnavailable
from paygate_common.money import require_minimum_charge
from paygate_common.pagination import decode_cursor, split_page

log = logging.getLogger("order_service.orders")

PAYMENT_TIMEOUT = "payment_timeout"
CUSTOMER_CANCELLED = "customer_cancelled"


async def check_new_order(
    *,
    methods: PaymentMethods,
    limits: LimitsClient | None,
    order_id: uuid.UUID,
    user_id: uuid.UUID,
    amount: int,
    currency: str,
    payment_method_id: uuid.UUID | None,
) -> PaymentContextRead | None:
    """Refuse at once what the charge would fail on later, and reserve the amount; the context.

    A too small amount, a foreign method (422) and a limit (422 `limit_exceeded`, 503
    `limits_unavailable`: fails closed) are refused before the order exists. The payment context
    and the reservation are asked for at the same time, so their round trips overlap; a
    reservation made for an order refused on its method is given back at once (failing that,
    transaction-service's orphan sweep releases it, as for any order that never commits).
    """
    require_minimum_charge(amount, currency)
    if limits is None:
        return await methods.context_for_order(user_id, payment_method_id)
    context, reserved = await asyncio.gather(
        methods.context_for_order(user_id, payment_method_id),
        limits.reserve(reference_id=order_id, user_id=user_id, amount=amount, currency=currency),
        return_exceptions=True,
    )
    if isinstance(context, BaseException):
        if not isinstance(reserved, BaseException):
            await _give_back(limits, order_id)
        raise context
    if isinstance(reserved, BaseException):
        raise reserved
    found: PaymentContextRead | None = context
    return found


async def _give_back(limits: LimitsClient, order_id: uuid.UUID) -> None:
    try:
        await limits.release(order_id)
    except LimitsUnavailable:
        log.warning("reservation of refused order %s is left to the orphan sweep", order_id)


async def place_order(
    *,
    session: AsyncSession,
    order_id: uuid.UUID,
    user_id: uuid.UUID,
    amount: int,
    currency: str,
    description: str | None,
    payment_method_id: uuid.UUID | None,
    context: PaymentContextRead | None,
) -> OrderRecord:
    """A pending order and its `order.create` event, in the same transaction (one statement)."""
    event = order_created(
        order_id=order_id,
        user_id=user_id,
        amount=amount,
        currency=currency,
        description=description,
        payment_method_id=payment_method_id,
        context=context,
    )
    return await store.insert_order_with_event(
        session,
        order_id=order_id,
        user_id=user_id,
        amount=amount,
        currency=currency,
        description=description,
        payment_method_id=payment_method_id,
        event=event,
    )


async def order_for(
    *, session: AsyncSession, order_id: uuid.UUID, principal: Principal
) -> OrderRecord:
    """The order if the caller owns it or is an admin; otherwise `OrderNotFound` (never 403)."""
    order = await store.fetch_order(session, order_id)
    return owned_or_raise(order, principal, OrderNotFound(f"No order {order_id}"))


@dataclass(frozen=True)
class OrderPage:
    items: list[OrderRecord]
    next_cursor: str | None


async def list_orders(
    *, session: AsyncSession, user_id: uuid.UUID, limit: int, cursor: str | None = None
) -> OrderPage:
    """The user's orders, newest first, keyset-paginated on (created_at, id)."""
    after = decode_cursor(cursor) if cursor else None
    rows = await store.list_user_orders(session, user_id=user_id, limit=limit + 1, after=after)
    items, next_cursor = split_page(rows, limit)
    return OrderPage(items=items, next_cursor=next_cursor)


@dataclass(frozen=True)
class OrderMove:
    """What a payment event asks of its order: `target`, only from `sources`, with `summary`."""

    order_id: uuid.UUID
    payment_id: uuid.UUID
    payment_status: str
    target: OrderStatus
    sources: frozenset[str]
    summary: dict[str, Any]


def move_for(event: PaymentEvent) -> OrderMove | None:
    """The one rule from a payment event to its order's move (None: the payment has no order)."""
    if event.order_id is None:
        return None  # a payment created directly (POST /payments): no order of ours
    target = status_for_payment(event.status)
    summary: dict[str, Any] = {
        "payment_id": event.payment_id,
        "payment_provider": event.provider,
        "failure_code": event.failure_code,
        "failure_message": event.failure_message,
        "next_action": event.next_action,
    }
    if target is OrderStatus.CANCELLED:
        summary["cancel_reason"] = "payment_cancelled"
    # Any other target (REFUNDED included) leaves cancel_reason alone: a cancelled order keeps
    # the reason it was cancelled for.
    return OrderMove(
        order_id=event.order_id,
        payment_id=event.payment_id,
        payment_status=event.status.value,
        target=target,
        sources=frozenset(s.value for s in allowed_from(target)),
        summary=summary,
    )


async def apply_payment_event(*, session: AsyncSession, event: PaymentEvent) -> bool:
    """Move the order as the payment says, if that is a forward move; True when applied.

    The guard is in the UPDATE itself (`status IN allowed_from`), so concurrent or late events
    can never move an order backwards or out of a terminal state.
    """
    move = move_for(event)
    if move is None:
        return False
    if await store.transition_status(
        session,
        order_id=move.order_id,
        new_status=move.target.value,
        allowed_from=move.sources,
        summary=move.summary,
    ):
        _log_applied(move)
        return True
    _log_ignored(move, await store.current_status(session, move.order_id))
    return False


async def apply_payment_events(*, session: AsyncSession, events: Sequence[PaymentEvent]) -> int:
    """`apply_payment_event` for a consumed batch, one guarded UPDATE per round; how many moved.

    Round k holds each order's k-th event of the batch, so one statement never touches a row
    twice and an order's events apply in the order they came, as one by one (a batch rarely
    holds two events of one order: one round). The ignored moves' orders are read in one query,
    for the log.
    """
    rounds: list[list[OrderMove]] = []
    seen: dict[uuid.UUID, int] = {}
    for event in events:
        move = move_for(event)
        if move is None:
            continue
        k = seen.get(move.order_id, 0)
        seen[move.order_id] = k + 1
        if k == len(rounds):
            rounds.append([])
        rounds[k].append(move)
    applied = 0
    for moves in rounds:
        moved = await store.transition_statuses(
            session,
            [(m.order_id, m.target.value, m.sources, m.summary) for m in moves],
        )
        applied += len(moved)
        ignored = [m for m in moves if m.order_id not in moved]
        current = await store.current_statuses(session, [m.order_id for m in ignored])
        for move in moves:
            if move.order_id in moved:
                _log_applied(move)
            else:
                _log_ignored(move, current.get(move.order_id))
    return applied


def _log_applied(move: OrderMove) -> None:
    log.info("order %s is now %s (payment %s)", move.order_id, move.target.value, move.payment_id)


def _log_ignored(move: OrderMove, current: str | None) -> None:
    if current is None:
        log.warning(
            "payment event for unknown order %s ignored (payment %s, status %s)",
            move.order_id,
            move.payment_id,
            move.payment_status,
        )
    elif current == move.target.value:
        log.info("order %s is already %s (payment %s)", move.order_id, current, move.payment_status)
    else:
        log.warning(
            "payment event ignored: order %s is %s, the event would make it %s",
            move.order_id,
            current,
            move.target.value,
        )


async def cancel_order(*, session: AsyncSession, order: OrderRecord) -> OrderRecord:
    """pending or requires_action → cancelled, and `order.cancelled` so it is never charged.

    If the charge is already in flight, payment-service lets it finish and refunds it (or voids
    the authorisation); the order then moves on to `refunded`.
    """
    moved = await store.transition_status(
        session,
        order_id=order.id,
        new_status=OrderStatus.CANCELLED.value,
        allowed_from={s.value for s in CANCELLABLE},
        summary={"cancel_reason": CUSTOMER_CANCELLED},
    )
    if not moved:
        raise InvalidOrderState(f"An order that is {order.status} cannot be cancelled")
    await publish_order_cancelled(
        session, order_id=order.id, user_id=order.user_id, reason=CUSTOMER_CANCELLED
    )
    current = await store.fetch_order(session, order.id)
    assert current is not None
    return current


async def request_refund(
    *, session: AsyncSession, order: OrderRecord, amount: int | None
) -> OrderRecord:
    """Ask payment-service (through `order.refund_requested`) to refund a paid order's payment.

    The order stays `paid` until the payment says `refunded` (then it is `refunded`); a partial
    refund leaves it `paid`. Payment-service checks the amount against what was captured.
    """
    locked = await store.lock_order(session, order.id)
    if locked is None or locked.status != OrderStatus.PAID:
        status = locked.status if locked else order.status
        raise InvalidOrderState(f"Only a paid order can be refunded; this one is {status}")
    if amount is not None and amount > locked.amount:
        raise RefundExceedsOrder(f"The order's amount is {locked.amount}")
    await publish_refund_requested(
        session, order_id=locked.id, user_id=locked.user_id, amount=amount
    )
    return locked


async def cancel_stale_orders(
    *, session: AsyncSession, pending_timeout_seconds: float, batch_size: int
) -> list[uuid.UUID]:
    """Cancel orders pending too long (`payment_timeout`) and publish `order.cancelled` for each."""
    cancelled = await store.cancel_stale_pending(
        session,
        older_than_seconds=pending_timeout_seconds,
        reason=PAYMENT_TIMEOUT,
        limit=batch_size,
    )
    for order_id, user_id in cancelled:
        await publish_order_cancelled(
            session, order_id=order_id, user_id=user_id, reason=PAYMENT_TIMEOUT
        )
        log.info("order %s cancelled: %s", order_id, PAYMENT_TIMEOUT)
    return [order_id for order_id, _ in cancelled]
