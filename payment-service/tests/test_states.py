"""The payment state table: what may follow what, what is shown, what is published."""

from __future__ import annotations

import pytest

from paygate_common.events import PaymentStatus
from payment_service.domain.states import (
    CAPTURED,
    FINAL,
    PUBLIC_STATUS,
    PUBLISHED,
    TRANSITIONS,
    VOIDABLE,
    IllegalTransition,
    PaymentState,
    check_moves,
    sources_of,
    state_for,
)

S = PaymentState


def test_failed_cancelled_and_refunded_are_final() -> None:
    assert {S.FAILED, S.CANCELLED, S.REFUNDED} == FINAL


def test_captured_money_only_goes_back_through_refunds() -> None:
    for state in CAPTURED - FINAL:
        assert TRANSITIONS[state] <= {S.PARTIALLY_REFUNDED, S.REFUNDED}
    # Nothing un-captures: no captured state is a source of an uncaptured one.
    for target in set(S) - CAPTURED:
        assert not (sources_of(target) & CAPTURED), target


def test_capture_only_from_requires_capture_and_void_only_before_capture() -> None:
    assert sources_of(S.CAPTURING) == {S.REQUIRES_CAPTURE}
    assert sources_of(S.CANCELLING) == VOIDABLE
    assert not (VOIDABLE & CAPTURED)


def test_every_state_is_shown_as_a_public_status_and_internal_hops_are_not_published() -> None:
    assert set(PUBLIC_STATUS) == set(S)
    internal = {S.CREATED, S.PROCESSING, S.CAPTURING, S.CANCELLING}
    assert not (internal & PUBLISHED)
    assert {PUBLIC_STATUS[s] for s in internal} == {PaymentStatus.PROCESSING}
    assert {PUBLIC_STATUS[s] for s in PUBLISHED} == set(PaymentStatus) - {PaymentStatus.PENDING}


@pytest.mark.parametrize("status", list(PaymentStatus))
def test_every_provider_status_leads_to_a_state(status: PaymentStatus) -> None:
    assert state_for(status) in S


def test_a_move_the_table_does_not_list_is_refused() -> None:
    with pytest.raises(IllegalTransition):
        check_moves((S.SUCCEEDED,), S.FAILED)
    with pytest.raises(IllegalTransition):
        check_moves((S.CANCELLED,), S.CAPTURING)
    check_moves((S.REQUIRES_CAPTURE,), S.CAPTURING)
