"""The order state machine: forward moves only; failed and refunded are terminal, cancelled only refunds."""

from __future__ import annotations

import pytest

from order_service.domain.status import (
    OrderStatus,
    allowed_from,
    can_transition,
    status_for_payment,
)
from paygate_common.events import PaymentStatus

S = OrderStatus

ALLOWED = {
    (S.PENDING, S.PAID),
    (S.PENDING, S.FAILED),
    (S.PENDING, S.REQUIRES_ACTION),
    (S.PENDING, S.CANCELLED),
    (S.REQUIRES_ACTION, S.PAID),
    (S.REQUIRES_ACTION, S.FAILED),
    (S.REQUIRES_ACTION, S.CANCELLED),
    (S.PAID, S.REFUNDED),
    # A cancellation that lost the race against its charge ends refunded, not paid-but-cancelled.
    (S.CANCELLED, S.REFUNDED),
}


@pytest.mark.parametrize("current", list(S))
@pytest.mark.parametrize("target", list(S))
def test_only_forward_moves_are_allowed(current: OrderStatus, target: OrderStatus) -> None:
    assert can_transition(current, target) == ((current, target) in ALLOWED)


def test_terminal_states_never_move() -> None:
    for terminal in (S.FAILED, S.REFUNDED):
        assert not any(can_transition(terminal, t) for t in S)
        assert all(terminal not in allowed_from(t) or t == terminal for t in S)
    assert {t for t in S if can_transition(S.CANCELLED, t)} == {S.REFUNDED}


def test_the_update_guard_matches_the_machine() -> None:
    assert allowed_from(S.PAID) == {S.PENDING, S.REQUIRES_ACTION}
    assert allowed_from(S.FAILED) == {S.PENDING, S.REQUIRES_ACTION}
    assert allowed_from(S.REFUNDED) == {S.PAID, S.CANCELLED}
    # A repeated requires_action may refresh the 3-D Secure link; nothing else repeats.
    assert allowed_from(S.REQUIRES_ACTION) == {S.PENDING, S.REQUIRES_ACTION}
    assert S.CANCELLED not in allowed_from(S.CANCELLED)


def test_every_payment_status_maps_to_an_order_status() -> None:
    assert status_for_payment(PaymentStatus.SUCCEEDED) is S.PAID
    assert status_for_payment(PaymentStatus.FAILED) is S.FAILED
    assert status_for_payment(PaymentStatus.REQUIRES_ACTION) is S.REQUIRES_ACTION
    assert status_for_payment(PaymentStatus.REFUNDED) is S.REFUNDED
    assert status_for_payment(PaymentStatus.PARTIALLY_REFUNDED) is S.PAID
    assert status_for_payment(PaymentStatus.PROCESSING) is S.PENDING
    assert status_for_payment(PaymentStatus.REQUIRES_CAPTURE) is S.PENDING
    assert {status_for_payment(p) for p in PaymentStatus} <= set(S)
