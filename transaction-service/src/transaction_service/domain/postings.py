"""Postings from a payment's running totals: what changed since the ledger last looked, as lines.

Every `payment.event` carries the payment's totals after the transition (amount_capturable,
amount_captured, amount_refunded). The ledger keeps, per payment, the totals it has already
posted and posts only the difference. Captured and refunded totals only grow, so the ledger
takes the maximum it has seen; the authorisation hold is open only while the payment is
`authorized` and released for good once it is `settled` (captured, voided or failed). An old
or repeated event therefore moves nothing, whatever order events arrive in.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from paygate_common.events import PaymentEvent, PaymentStatus
from transaction_service.domain.accounts import PLATFORM, AccountKey, AccountKind
from transaction_service.domain.fees import FeeTerms


class Phase(StrEnum):
    """Where a payment is for the ledger: nothing held, a hold open, or the hold gone for good."""

    OPEN = "open"
    AUTHORIZED = "authorized"
    SETTLED = "settled"


# The one transition table: a phase never moves back (a late requires_capture after a capture
# must not open a new hold).
PHASE_TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.OPEN: frozenset({Phase.AUTHORIZED, Phase.SETTLED}),
    Phase.AUTHORIZED: frozenset({Phase.SETTLED}),
    Phase.SETTLED: frozenset(),
}

PHASE_OF_STATUS: dict[PaymentStatus, Phase] = {
    PaymentStatus.PENDING: Phase.OPEN,
    PaymentStatus.PROCESSING: Phase.OPEN,
    PaymentStatus.REQUIRES_ACTION: Phase.OPEN,
    PaymentStatus.REQUIRES_CAPTURE: Phase.AUTHORIZED,
    PaymentStatus.SUCCEEDED: Phase.SETTLED,
    PaymentStatus.FAILED: Phase.SETTLED,
    PaymentStatus.CANCELLED: Phase.SETTLED,
    PaymentStatus.PARTIALLY_REFUNDED: Phase.SETTLED,
    PaymentStatus.REFUNDED: Phase.SETTLED,
}

CAPTURED_STATUSES = frozenset(
    {PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED}
)

# How far along a status is, for the status a history row shows (never moves back either).
STATUS_RANK: dict[str, int] = {
    "pending": 0,
    "processing": 0,
    "requires_action": 1,
    "requires_capture": 2,
    "failed": 3,
    "cancelled": 3,
    "succeeded": 3,
    "partially_refunded": 4,
    "refunded": 5,
}


def next_phase(current: Phase, wanted: Phase) -> Phase:
    return wanted if wanted in PHASE_TRANSITIONS[current] else current


@dataclass(frozen=True)
class PaymentTotals:
    """What the ledger has posted for one payment."""

    phase: Phase = Phase.OPEN
    status: str = "processing"
    pending: int = 0
    captured: int = 0
    refunded: int = 0
    fee: int = 0
    fee_refunded: int = 0


def captured_of(event: PaymentEvent) -> int:
    """The captured total an event reports; old producers sent 0 on automatic captures."""
    if (
        event.amount_captured == 0
        and event.status in CAPTURED_STATUSES
        and event.capture_method == "automatic"
    ):
        return event.amount
    return event.amount_captured


def display_status(current: PaymentTotals, event_status: str, after: PaymentTotals) -> str:
    if after.captured > 0:
        if after.refunded >= after.captured:
            return "refunded"
        return "partially_refunded" if after.refunded > 0 else "succeeded"
    if STATUS_RANK.get(event_status, 0) >= STATUS_RANK.get(current.status, 0):
        return event_status
    return current.status


def apply_event(
    current: PaymentTotals, event: PaymentEvent, terms: FeeTerms, *, refunds_total: int = 0
) -> PaymentTotals:
    """The totals after `event`: monotonic captured/refunded, a hold only while authorized.

    `refunds_total` is the sum of the payment's succeeded refunds (`refund.succeeded`) seen so
    far: the refunded total is the larger of that and what the payment's own events said.
    """
    phase = next_phase(current.phase, PHASE_OF_STATUS[event.status])
    captured = max(current.captured, captured_of(event))
    if captured > 0:
        phase = next_phase(phase, Phase.SETTLED)
    refunded = min(captured, max(current.refunded, event.amount_refunded, refunds_total))
    if phase is Phase.AUTHORIZED:
        if event.status is PaymentStatus.REQUIRES_CAPTURE:
            pending = event.amount_capturable or event.amount
        else:
            pending = current.pending  # an older event while the hold is open
    else:
        pending = 0
    fee = max(current.fee, terms.fee_for(captured))
    fee_refunded = min(
        fee, max(current.fee_refunded, terms.fee_returned_for(fee, captured, refunded))
    )
    after = PaymentTotals(
        phase=phase,
        status=current.status,
        pending=pending,
        captured=captured,
        refunded=refunded,
        fee=fee,
        fee_refunded=fee_refunded,
    )
    return replace(after, status=display_status(current, event.status.value, after))


def apply_refunds(current: PaymentTotals, refunds_total: int, terms: FeeTerms) -> PaymentTotals:
    """The totals after a `refund.succeeded`: refunded up to the refunds' sum, never past captured.

    Before the capture is known (a refund event overtook it) nothing moves; the payment's
    capture event brings the refunds along (`apply_event(refunds_total=...)`).
    """
    refunded = min(current.captured, max(current.refunded, refunds_total))
    fee_back = terms.fee_returned_for(current.fee, current.captured, refunded)
    after = replace(
        current,
        refunded=refunded,
        fee_refunded=min(current.fee, max(current.fee_refunded, fee_back)),
    )
    return replace(after, status=display_status(current, current.status, after))


@dataclass(frozen=True)
class Movement:
    """One journal line: `amount` > 0 debits the account, < 0 credits it."""

    account: AccountKey
    amount: int


def movements(
    before: PaymentTotals,
    after: PaymentTotals,
    *,
    merchant: str,
    provider: str,
    currency: str,
) -> list[Movement]:
    """The balanced lines that take the ledger from `before` to `after` (empty: nothing moved).

    authorisation: debit provider_authorizations, credit merchant_pending (released by the
    reverse); capture: debit provider_clearing, credit merchant_available (net of the fee) and
    platform_fees (the fee); refund: debit merchant_available, credit provider_refunds; a fee
    given back on a refund: debit platform_fees, credit merchant_available.
    """

    def key(kind: AccountKind, owner: str) -> AccountKey:
        return AccountKey(kind, owner, currency)

    d_pending = after.pending - before.pending
    d_captured = after.captured - before.captured
    d_refunded = after.refunded - before.refunded
    d_fee = after.fee - before.fee
    d_fee_back = after.fee_refunded - before.fee_refunded
    if min(d_captured, d_refunded, d_fee, d_fee_back) < 0:
        raise ValueError("captured, refunded and fee totals never decrease")
    lines: dict[AccountKey, int] = {}

    def post(account: AccountKey, amount: int) -> None:
        lines[account] = lines.get(account, 0) + amount

    post(key(AccountKind.PROVIDER_AUTHORIZATIONS, provider), d_pending)
    post(key(AccountKind.MERCHANT_PENDING, merchant), -d_pending)
    post(key(AccountKind.PROVIDER_CLEARING, provider), d_captured)
    post(key(AccountKind.MERCHANT_AVAILABLE, merchant), -(d_captured - d_fee))
    post(key(AccountKind.PLATFORM_FEES, PLATFORM), -d_fee)
    post(key(AccountKind.MERCHANT_AVAILABLE, merchant), d_refunded)
    post(key(AccountKind.PROVIDER_REFUNDS, provider), -d_refunded)
    post(key(AccountKind.PLATFORM_FEES, PLATFORM), d_fee_back)
    post(key(AccountKind.MERCHANT_AVAILABLE, merchant), -d_fee_back)
    result = [Movement(account, amount) for account, amount in sorted(lines.items()) if amount]
    assert sum(m.amount for m in result) == 0, "postings must balance"
    return result
