"""Payment rules: recording, moving through the state table, capture and void requests, reads.

Every function runs in the caller's unit of work and never commits. Every status write is
`move()`, which refuses moves `states.TRANSITIONS` does not list and publishes
`payment.<status>` (with the running amounts) through the outbox in the same transaction.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from paygate_common.events import (
    PAYMENT_EVENT,
    OrderCancelled,
    OrderCreated,
    PaymentEvent,
    new_event,
)
from paygate_common.logging import current_request_id
from paygate_common.outbox import OutgoingEvent, add_events
from paygate_common.worker import notify
from payment_service.connectors.base import ConnectorResult, Flow, operation_key, require
from payment_service.connectors.registry import connector_for
from payment_service.domain.errors import CaptureExceedsCapturable, InvalidState, PaymentNotFound
from payment_service.domain.states import (
    CAPTURED,
    PUBLISHED,
    VOIDABLE,
    PaymentState,
    check_moves,
    public_status,
    sources_of,
    state_for,
)
from payment_service.store import payments as store
from payment_service.store.payments import OperationRow, PaymentRow

log = logging.getLogger("payment_service.payments")

PRODUCER = "payment-service"
# NOTIFY channel that wakes the executor and the operation sender (`paygate_common.worker`).
WORK_CHANNEL = "paygate_payment_work"
# Stripe keeps an uncaptured card authorisation for 7 days.
DEFAULT_CAPTURE_WINDOW_SECONDS = 7 * 24 * 3600

S = PaymentState
CREATED = S.CREATED.value
PROCESSING = S.PROCESSING.value


def payment_event(payment: PaymentRow) -> OutgoingEvent:
    """The payment's current public status as a `payment.event` for the outbox."""
    payload = PaymentEvent(
        payment_id=payment.id,
        order_id=payment.order_id,
        user_id=payment.user_id,
        status=public_status(payment.status),
        amount=payment.amount,
        currency=payment.currency,
        provider=payment.provider,
        provider_reference=payment.provider_reference,
        failure_code=payment.failure_code,
        failure_message=payment.failure_message,
        next_action=payment.next_action,
        capture_method=payment.capture_method,
        amount_capturable=payment.amount_capturable,
        amount_captured=payment.amount_captured,
        amount_refunded=payment.amount_refunded,
    )
    envelope = new_event(
        payload,
        producer=PRODUCER,
        # An order's payment events keep the order's key (its consumers read them in order);
        # a direct payment's are keyed by the payment.
        aggregate_id=str(payment.order_id or payment.id),
        correlation_id=payment.correlation_id,
    )
    return OutgoingEvent(envelope, PAYMENT_EVENT)


async def publish(session: AsyncSession, payment: PaymentRow) -> None:
    """Write the payment's current public status as a `payment.event` in the caller's transaction."""
    await add_events(session, [payment_event(payment)])


async def move(
    session: AsyncSession,
    payment_id: uuid.UUID,
    *,
    to: PaymentState,
    from_states: Iterable[PaymentState] | None = None,
    expect: dict[str, Any] | None = None,
    **values: Any,
) -> PaymentRow | None:
    """THE status write: guarded by the table (and `from_states`), publishing when `to` is public.

    None when the payment is not in an allowed state (someone else moved it first).
    """
    sources = tuple(sources_of(to) if from_states is None else from_states)
    check_moves(sources, to)
    row = await store.transition(
        session,
        payment_id,
        to=to.value,
        from_states=[s.value for s in sources],
        expect=expect,
        **values,
    )
    if row is not None and to in PUBLISHED:
        await publish(session, row)
    return row


def _result_move(
    payment: PaymentRow,
    result: ConnectorResult,
    allowed: frozenset[PaymentState],
    *,
    captured: int | None,
    capture_window_seconds: float,
) -> store.ResultMove:
    """Where the provider's answer takes this (locked, allowed-to-move) payment, and with what
    fields: the running amounts are the providers' own figures when they give them."""
    target = state_for(result.status)
    check_moves(tuple(allowed), target)
    capturable: int | None = None
    amount_captured: int | None = None
    capture_in: float | None = None
    match target:
        case S.REQUIRES_CAPTURE:
            capturable = min(result.amount_capturable or payment.amount, payment.amount)
            capture_in = capture_window_seconds
        case S.SUCCEEDED:
            amount = result.amount_captured or captured or payment.amount
            capturable, amount_captured = 0, min(amount, payment.amount)
        case S.CANCELLED | S.FAILED:
            capturable = 0
        case _:
            pass
    # A void we asked for keeps our reason (the provider's object may not carry one).
    keep = target is S.CANCELLED and not result.failure_code
    return store.ResultMove(
        payment_id=payment.id,
        to_state=target.value,
        from_states=tuple(sorted(s.value for s in allowed)),
        failure_code=payment.failure_code if keep else result.failure_code,
        decline_code=result.decline_code,
        failure_message=payment.failure_message if keep else result.failure_message,
        next_action=result.next_action,
        provider_reference=result.provider_reference or None,
        amount_capturable=capturable,
        amount_captured=amount_captured,
        capture_in_seconds=capture_in,
    )


async def apply_results(
    session: AsyncSession,
    results: Sequence[tuple[uuid.UUID, ConnectorResult]],
    *,
    from_states: Sequence[str | PaymentState] | None = None,
    captured: int | None = None,
    capture_window_seconds: float = DEFAULT_CAPTURE_WINDOW_SECONDS,
) -> list[PaymentRow | None]:
    """Move each payment to where its provider says it is (guarded) and publish; in input order,
    None where the table (or `from_states`) does not allow it.

    The rows are locked first (one statement) so the amounts are computed from what is current;
    then one UPDATE moves them all, one INSERT writes their `payment.event`s.
    """
    ids = [payment_id for payment_id, _ in results]
    if len(set(ids)) != len(ids):
        raise ValueError("apply_results got the same payment twice")
    locked = await store.lock_payments(session, ids)
    restrict = None if from_states is None else {PaymentState(s) for s in from_states}
    moves: list[store.ResultMove] = []
    for payment_id, result in results:
        payment = locked.get(payment_id)
        if payment is None:
            continue
        allowed = sources_of(state_for(result.status))
        if restrict is not None:
            allowed = allowed & restrict
        if PaymentState(payment.status) not in allowed:
            continue
        moves.append(
            _result_move(
                payment,
                result,
                allowed,
                captured=captured,
                capture_window_seconds=capture_window_seconds,
            )
        )
    moved = await store.move_results(session, moves)
    await add_events(
        session,
        [payment_event(row) for row in moved.values() if PaymentState(row.status) in PUBLISHED],
    )
    for row in moved.values():
        if row.cancel_requested and row.status in (S.SUCCEEDED, S.REQUIRES_CAPTURE):
            # The order was cancelled while this charge was in flight and the charge won the
            # race: give the money back instead of leaving a paid payment behind a cancelled order.
            from payment_service.domain import refunds

            await refunds.unwind_cancelled_order(session, row)
    return [moved.get(payment_id) for payment_id in ids]


async def apply_result(
    session: AsyncSession,
    payment_id: uuid.UUID,
    result: ConnectorResult,
    *,
    from_states: Sequence[str | PaymentState] | None = None,
    captured: int | None = None,
    capture_window_seconds: float = DEFAULT_CAPTURE_WINDOW_SECONDS,
) -> PaymentRow | None:
    """`apply_results` for one payment; None if the move is not allowed."""
    [row] = await apply_results(
        session,
        [(payment_id, result)],
        from_states=from_states,
        captured=captured,
        capture_window_seconds=capture_window_seconds,
    )
    return row


async def lease_and_start_due(
    session: AsyncSession,
    *,
    limit: int,
    lease_seconds: float,
    max_attempts: int,
    providers: Sequence[str],
    methodless: Sequence[str],
) -> tuple[list[PaymentRow], list[PaymentRow]]:
    """Lease due `created` payments; returns (started, leased).

    `started` moved to `processing` (their `attempt_count` is the new attempt's number): those
    ready to charge at once (a known provider and a token, or a provider that needs none).
    `leased` are only leased: to reconcile, cancel, give up on, or look a method up for first.
    The caller inserts the started attempts in the same transaction (`start_attempts` does).
    """
    check_moves((S.CREATED,), S.PROCESSING)
    rows = await store.lease_and_start_due(
        session,
        limit=limit,
        lease_seconds=lease_seconds,
        max_attempts=max_attempts,
        providers=providers,
        methodless=methodless,
    )
    started = [row for row in rows if row.started]
    return started, [row for row in rows if not row.started]


async def start_leased(session: AsyncSession, leased: Sequence[PaymentRow]) -> set[uuid.UUID]:
    """`created → processing` for leased payments still as they were leased (attempt count,
    not flagged for reconciliation or cancellation); returns the ids that moved."""
    check_moves((S.CREATED,), S.PROCESSING)
    return await store.start_leased(session, [(row.id, row.attempt_count) for row in leased])


# --- recording ---------------------------------------------------------------------------------


async def record_order(session: AsyncSession, order: OrderCreated, *, provider: str) -> bool:
    """Record the intent to charge an order; False if the order already has a payment."""
    if order.amount <= 0:
        raise ValueError(f"order {order.order_id} has a non-positive amount")
    row = await store.insert_payment(
        session,
        id=uuid.uuid4(),
        order_id=order.order_id,
        user_id=order.user_id,
        amount=order.amount,
        currency=order.currency.lower(),
        description=order.description,
        payment_method_id=order.payment_method_id,
        # The context order-service read when it took the order: the executor charges with it
        # instead of asking user-service. An older order.create has none: the executor asks.
        payment_method_token=order.payment_method_token,
        provider_customer_id=order.provider_customer_id if order.payment_method_token else None,
        provider=provider,
        status=CREATED,
        correlation_id=current_request_id(),
    )
    if row is None:
        log.info("order %s already has a payment; order.create ignored", order.order_id)
    else:
        await notify(session, WORK_CHANNEL)
    return row is not None


@dataclass(frozen=True)
class DirectPayment:
    """A validated POST /payments body (the method was checked to be the caller's)."""

    user_id: uuid.UUID
    amount: int
    currency: str
    provider: str
    capture_method: str
    payment_method_id: uuid.UUID | None
    payment_method_token: str | None
    description: str | None
    metadata: dict[str, str] | None
    return_url: str | None
    # Paid on the hosted checkout page: no method yet, the customer brings one there.
    checkout: bool = False
    # The saved method's customer at the provider, read with its token when it was checked.
    provider_customer_id: str | None = None


async def create_payment(
    session: AsyncSession, payment: DirectPayment, *, checkout_base_url: str | None = None
) -> PaymentRow:
    """A payment without an order, recorded `created`; the executor authorises it after commit.

    A checkout payment instead waits in `requires_action` for the customer, its `next_action`
    the hosted page at `{checkout_base_url}/checkout/{id}` (the executor leaves it alone).
    """
    payment_id = uuid.uuid4()
    row = await store.insert_direct_payment(
        session,
        id=payment_id,
        order_id=None,
        user_id=payment.user_id,
        amount=payment.amount,
        currency=payment.currency,
        description=payment.description,
        payment_method_id=payment.payment_method_id,
        payment_method_token=payment.payment_method_token,
        provider_customer_id=payment.provider_customer_id,
        provider=payment.provider,
        capture_method=payment.capture_method,
        metadata=payment.metadata,
        return_url=payment.return_url,
        checkout=payment.checkout,
        status=CREATED,
        correlation_id=current_request_id(),
    )
    if payment.checkout:
        if checkout_base_url is None:
            raise ValueError("a checkout payment needs the hosted page's base URL")
        page = f"{checkout_base_url.rstrip('/')}/checkout/{payment_id}"
        waiting = await move(
            session,
            payment_id,
            to=S.REQUIRES_ACTION,
            from_states=(S.CREATED,),
            next_action={
                "type": "redirect_to_url",
                "redirect_to_url": {"url": page, "return_url": payment.return_url},
            },
        )
        if waiting is None:  # inserted in this very transaction: cannot have moved on
            raise RuntimeError(f"checkout payment {payment_id} vanished before it was shown")
        return waiting
    await notify(session, WORK_CHANNEL)
    return row


# --- capture and void ------------------------------------------------------------------------


async def request_capture(
    session: AsyncSession, payment_id: uuid.UUID, *, amount: int | None
) -> OperationRow:
    """Record a capture (amount ≤ capturable; the rest is released) and move to `capturing`."""
    payment = await store.lock_payment(session, payment_id)
    if payment is None:
        raise PaymentNotFound("No such payment")
    if payment.status != S.REQUIRES_CAPTURE:
        raise InvalidState(
            f"Only a requires_capture payment can be captured; this one is "
            f"{public_status(payment.status).value}"
        )
    capturable = int(payment.amount_capturable or payment.amount)
    amount = capturable if amount is None else amount
    if amount > capturable:
        raise CaptureExceedsCapturable(
            f"At most {capturable} can be captured", amount_capturable=capturable
        )
    connector = connector_for(payment.provider)
    require(connector, Flow.MANUAL_CAPTURE)
    if amount < capturable:
        require(connector, Flow.PARTIAL_CAPTURE)
    operation = await store.insert_operation(
        session,
        id=uuid.uuid4(),
        payment_id=payment.id,
        kind="capture",
        amount=amount,
        idempotency_key=operation_key(payment.id, "capture"),
        from_status=payment.status,
    )
    if operation is None:
        raise InvalidState("This payment was already captured once")
    await move(session, payment.id, to=S.CAPTURING, from_states=(S.REQUIRES_CAPTURE,))
    await notify(session, WORK_CHANNEL)
    return operation


async def request_void(
    session: AsyncSession,
    payment_id: uuid.UUID,
    *,
    source: str = "api",
    reason: str = "requested_by_customer",
) -> OperationRow | None:
    """Void before any money is captured; None when nothing had to be sent (never sent at all)."""
    payment = await store.lock_payment(session, payment_id)
    if payment is None:
        raise PaymentNotFound("No such payment")
    state = PaymentState(payment.status)
    if state is S.CREATED:
        # Nothing reached the provider: cancelled at once, never charged afterwards. (A payment
        # whose lost attempt is being reconciled is flagged; the executor cancels it once the
        # provider confirms nothing was charged.)
        if payment.needs_reconcile:
            await store.update_payment(
                session, payment.id, in_states=(CREATED,), cancel_requested=True
            )
            return None
        await move(
            session,
            payment.id,
            to=S.CANCELLED,
            from_states=(S.CREATED,),
            cancel_requested=True,
            failure_code=reason,
            failure_message="Cancelled before it was sent to the provider",
            lease_until=None,
        )
        return None
    if state is S.REQUIRES_ACTION and payment.checkout and not payment.provider_reference:
        # A hosted checkout nobody has paid yet: nothing at any provider to void.
        await move(
            session,
            payment.id,
            to=S.CANCELLED,
            from_states=(S.REQUIRES_ACTION,),
            expect={"provider_reference": None},
            failure_code=reason,
            failure_message="Cancelled before the customer paid",
            next_action=None,
        )
        return None
    if state not in VOIDABLE:
        raise InvalidState(
            "Only a payment whose money was not captured can be cancelled; this one is "
            f"{public_status(payment.status).value}"
        )
    if not payment.provider_reference:
        raise InvalidState("The provider has not answered for this payment yet; retry shortly")
    require(connector_for(payment.provider), Flow.VOID)
    operation = await store.insert_operation(
        session,
        id=uuid.uuid4(),
        payment_id=payment.id,
        kind="void",
        idempotency_key=operation_key(payment.id, "void"),
        from_status=payment.status,
        source=source,
    )
    if operation is None:
        raise InvalidState("This payment is already being cancelled")
    await move(
        session,
        payment.id,
        to=S.CANCELLING,
        from_states=(state,),
        # Only an order's cancellation asks for the money back should the void lose a race.
        cancel_requested=source == "order",
        failure_code=reason,
    )
    await notify(session, WORK_CHANNEL)
    return operation


async def cancel_for_order(session: AsyncSession, order: OrderCancelled) -> str | None:
    """Stop an order's payment, whatever point it reached; returns its stored state afterwards.

    Not sent yet → cancelled. Attempt in flight, or outcome unknown → flagged: the executor
    asks the provider first, and a charge that then succeeds is refunded. Authorised or waiting
    for the customer → voided. Already captured → refunded in full (the order's cancellation
    lost the race against its charge; the money goes back automatically).
    """
    payment = await store.get_payment_by_order(session, order.order_id)
    if payment is None:
        return None
    state = PaymentState(payment.status)
    if state is S.CREATED and not payment.needs_reconcile:
        await request_void(session, payment.id, source="order", reason="order_cancelled")
    elif state in (S.CREATED, S.PROCESSING, S.CAPTURING):
        await store.update_payment(
            session, payment.id, in_states=(state.value,), cancel_requested=True
        )
    elif state in VOIDABLE:
        await request_void(session, payment.id, source="order", reason="order_cancelled")
    elif state in CAPTURED:
        from payment_service.domain import refunds

        await store.update_payment(
            session, payment.id, in_states=(state.value,), cancel_requested=True
        )
        current = await store.get_payment(session, payment.id)
        if current is not None:
            await refunds.unwind_cancelled_order(session, current)
    current = await store.get_payment(session, payment.id)
    return str(current.status) if current is not None else None


# --- reads -----------------------------------------------------------------------------------


async def payment_for(
    session: AsyncSession, payment_id: uuid.UUID, *, user_id: uuid.UUID, is_admin: bool
) -> PaymentRow:
    """The payment, for its owner or an admin; 404 for anyone else (existence not disclosed)."""
    payment = await store.get_payment(session, payment_id)
    if payment is None or (payment.user_id != user_id and not is_admin):
        raise PaymentNotFound("No such payment")
    return payment


async def get_payment_for(
    session: AsyncSession, payment_id: uuid.UUID, *, user_id: uuid.UUID, is_admin: bool
) -> tuple[PaymentRow, Sequence[Any]]:
    """The payment and its attempts, for its owner or an admin; 404 for anyone else."""
    payment = await payment_for(session, payment_id, user_id=user_id, is_admin=is_admin)
    return payment, await store.list_attempts(session, payment_id)


async def list_payments(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    is_admin: bool,
    limit: int,
    cursor: uuid.UUID | None,
) -> tuple[Sequence[PaymentRow], uuid.UUID | None]:
    """The caller's payments newest first (an admin's own too); cursor = the last id seen."""
    after = None
    if cursor is not None:
        last = await payment_for(session, cursor, user_id=user_id, is_admin=is_admin)
        after = (last.created_at, last.id)
    rows = await store.list_user_payments(session, user_id=user_id, limit=limit + 1, after=after)
    items = rows[:limit]
    return items, (items[-1].id if len(rows) > limit else None)
