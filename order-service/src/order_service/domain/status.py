"""The order status state machine: which payment outcome moves an order where, and from where."""

from __future__ import annotations

from enum import StrEnum

from paygate_common.events import PaymentStatus


class OrderStatus(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"
    REQUIRES_ACTION = "requires_action"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


S = OrderStatus

# Forward moves only. `failed` and `refunded` are terminal. `cancelled` moves only to
# `refunded`: a cancellation that lost the race against its in-flight charge is refunded by
# payment-service automatically, and the order says so — never paid-but-cancelled.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.PENDING: frozenset({S.PAID, S.FAILED, S.REQUIRES_ACTION, S.CANCELLED}),
    S.REQUIRES_ACTION: frozenset({S.PAID, S.FAILED, S.CANCELLED}),
    S.PAID: frozenset({S.REFUNDED}),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset({S.REFUNDED}),
    S.REFUNDED: frozenset(),
}

# What a customer may cancel (nothing was captured yet).
CANCELLABLE: frozenset[OrderStatus] = frozenset({S.PENDING, S.REQUIRES_ACTION})

# A repeated outcome may refresh the payment summary (a new 3-D Secure link, the payment id of a
# still-pending charge) without changing the status; terminal states are never touched again.
REFRESHABLE: frozenset[OrderStatus] = frozenset({S.PENDING, S.REQUIRES_ACTION})

PAYMENT_OUTCOME: dict[PaymentStatus, OrderStatus] = {
    PaymentStatus.PENDING: S.PENDING,
    PaymentStatus.PROCESSING: S.PENDING,
    # Orders are captured automatically; an authorisation alone does not pay an order.
    PaymentStatus.REQUIRES_CAPTURE: S.PENDING,
    PaymentStatus.SUCCEEDED: S.PAID,
    # Part of the money went back: still paid (and refunded once all of it has).
    PaymentStatus.PARTIALLY_REFUNDED: S.PAID,
    PaymentStatus.FAILED: S.FAILED,
    PaymentStatus.REQUIRES_ACTION: S.REQUIRES_ACTION,
    PaymentStatus.REFUNDED: S.REFUNDED,
    PaymentStatus.CANCELLED: S.CANCELLED,
}


def can_transition(current: OrderStatus, target: OrderStatus) -> bool:
    return target in TRANSITIONS[current]


def allowed_from(target: OrderStatus) -> frozenset[OrderStatus]:
    """The states an order may be in for an event to move it to `target` (the UPDATE guard)."""
    sources = {state for state, targets in TRANSITIONS.items() if target in targets}
    if target in REFRESHABLE:
        sources.add(target)
    return frozenset(sources)


def status_for_payment(status: PaymentStatus) -> OrderStatus:
    return PAYMENT_OUTCOME[status]
