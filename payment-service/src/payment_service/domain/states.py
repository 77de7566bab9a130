"""The payment state machine: ONE enum, ONE transition table, and what each state shows and publishes.

Stored states are `PaymentState`; what clients and consumers see is its `public` status
(`PaymentStatus`). Four states exist only inside payment-service:

- `created`: the payment is recorded, nothing was sent to the provider yet;
- `processing`: one authorisation attempt is in flight (durable before the provider call);
- `capturing` / `cancelling`: a capture or a void was recorded and is being sent.

`pending` is the provider's own "processing" (a bank debit settling; a webhook ends it).
All five show as `processing`. Only entering a state that is public in its own right publishes
`payment.<status>`; the internal hops (`created → processing → created` on a lost answer,
`requires_capture → capturing`) publish nothing, so a consumer sees each real step once.

Every status write goes through `domain.payments.move`, which refuses a move this table does
not list; the UPDATE itself is guarded by the table's sources, so a late or repeated webhook
or provider answer can never move a payment backwards.
"""

from __future__ import annotations

from enum import StrEnum

from paygate_common.events import PaymentStatus


class PaymentState(StrEnum):
    CREATED = "created"
    PROCESSING = "processing"
    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"
    REQUIRES_CAPTURE = "requires_capture"
    CAPTURING = "capturing"
    CANCELLING = "cancelling"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


S = PaymentState

# Where a payment may go from each state. `failed`, `cancelled` and `refunded` are final.
TRANSITIONS: dict[PaymentState, frozenset[PaymentState]] = {
    # Nothing sent yet: an attempt starts, the payment is cancelled or given up on, or
    # reconciliation adopts what the provider holds for a lost attempt.
    S.CREATED: frozenset(
        {
            S.PROCESSING,
            S.PENDING,
            S.REQUIRES_ACTION,
            S.REQUIRES_CAPTURE,
            S.SUCCEEDED,
            S.FAILED,
            S.CANCELLED,
        }
    ),
    # An attempt in flight: its answer (or a webhook) settles it; an unknown answer or a
    # crash sends it back to `created` to be reconciled.
    S.PROCESSING: frozenset(
        {
            S.CREATED,
            S.PENDING,
            S.REQUIRES_ACTION,
            S.REQUIRES_CAPTURE,
            S.SUCCEEDED,
            S.FAILED,
            S.CANCELLED,
        }
    ),
    S.PENDING: frozenset(
        {S.REQUIRES_ACTION, S.REQUIRES_CAPTURE, S.SUCCEEDED, S.FAILED, S.CANCELLED, S.CANCELLING}
    ),
    # Waiting for the customer: 3-D Secure, a provider's approval page, or (hosted checkout,
    # nothing sent yet) their card, whose token sends the payment back to `created` to charge.
    S.REQUIRES_ACTION: frozenset(
        {
            S.CREATED,
            S.PENDING,
            S.REQUIRES_CAPTURE,
            S.SUCCEEDED,
            S.FAILED,
            S.CANCELLED,
            S.CANCELLING,
        }
    ),
    # Authorised, not captured: capture or void it (or the provider reports either).
    S.REQUIRES_CAPTURE: frozenset({S.CAPTURING, S.CANCELLING, S.SUCCEEDED, S.CANCELLED}),
    # A capture was sent: it succeeded, was refused (back to requires_capture), or the
    # provider had voided the authorisation meanwhile.
    S.CAPTURING: frozenset({S.SUCCEEDED, S.REQUIRES_CAPTURE, S.CANCELLED}),
    # A void was sent: it succeeded, or was refused because the money was captured after all
    # (adopted as succeeded), or refused for another reason (back where it was).
    S.CANCELLING: frozenset(
        {S.CANCELLED, S.SUCCEEDED, S.REQUIRES_CAPTURE, S.REQUIRES_ACTION, S.PENDING}
    ),
    # Captured money can only be refunded, in parts or at once.
    S.SUCCEEDED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    # Another partial refund keeps it here (the amounts change, an event says so).
    S.PARTIALLY_REFUNDED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REFUNDED: frozenset(),
}

PUBLIC_STATUS: dict[PaymentState, PaymentStatus] = {
    S.CREATED: PaymentStatus.PROCESSING,
    S.PROCESSING: PaymentStatus.PROCESSING,
    S.PENDING: PaymentStatus.PROCESSING,
    S.REQUIRES_ACTION: PaymentStatus.REQUIRES_ACTION,
    S.REQUIRES_CAPTURE: PaymentStatus.REQUIRES_CAPTURE,
    S.CAPTURING: PaymentStatus.PROCESSING,
    S.CANCELLING: PaymentStatus.PROCESSING,
    S.SUCCEEDED: PaymentStatus.SUCCEEDED,
    S.FAILED: PaymentStatus.FAILED,
    S.CANCELLED: PaymentStatus.CANCELLED,
    S.PARTIALLY_REFUNDED: PaymentStatus.PARTIALLY_REFUNDED,
    S.REFUNDED: PaymentStatus.REFUNDED,
}

# Entering these publishes `payment.<public status>`; the others are internal hops.
PUBLISHED: frozenset[PaymentState] = frozenset(
    {
        S.PENDING,
        S.REQUIRES_ACTION,
        S.REQUIRES_CAPTURE,
        S.SUCCEEDED,
        S.FAILED,
        S.CANCELLED,
        S.PARTIALLY_REFUNDED,
        S.REFUNDED,
    }
)

FINAL: frozenset[PaymentState] = frozenset(s for s, targets in TRANSITIONS.items() if not targets)
# Money was captured: only refunds from here.
CAPTURED: frozenset[PaymentState] = frozenset({S.SUCCEEDED, S.PARTIALLY_REFUNDED, S.REFUNDED})
# A void is possible: nothing captured, and no attempt is in flight.
VOIDABLE: frozenset[PaymentState] = frozenset({S.PENDING, S.REQUIRES_ACTION, S.REQUIRES_CAPTURE})


class IllegalTransition(ValueError):
    """A programming error: code asked for a move the table does not allow."""


def can_move(current: PaymentState, target: PaymentState) -> bool:
    return target in TRANSITIONS[current]


def sources_of(target: PaymentState) -> frozenset[PaymentState]:
    """Every state `target` may be entered from (the guard of the UPDATE)."""
    return frozenset(s for s, targets in TRANSITIONS.items() if target in targets)


def check_moves(sources: tuple[PaymentState, ...], target: PaymentState) -> None:
    for source in sources:
        if not can_move(source, target):
            raise IllegalTransition(f"{source.value} → {target.value} is not a payment transition")


def public_status(state: str) -> PaymentStatus:
    return PUBLIC_STATUS[PaymentState(state)]


def state_for(status: PaymentStatus) -> PaymentState:
    """The stored state a provider's answer leads to (`pending` is the legacy `processing`)."""
    if status in (PaymentStatus.PENDING, PaymentStatus.PROCESSING):
        return S.PENDING
    return PaymentState(status.value)
