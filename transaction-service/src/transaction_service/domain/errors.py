"""transaction-service errors with stable codes (rendered as problem+json by the shared handler)."""

from __future__ import annotations

from paygate_common.errors import Conflict, InvalidRequest, NotFound
from paygate_common.limits import LimitExceeded

__all__ = [
    "AnalyticsWindowInvalid",
    "LimitExceeded",
    "ReservationConflict",
    "ReservationNotFound",
    "TransactionNotFound",
]


class TransactionNotFound(NotFound):
    # Also what a caller sees for someone else's transaction: existence is not disclosed.
    code, title = "transaction_not_found", "Transaction not found"


class ReservationNotFound(NotFound):
    code, title = "reservation_not_found", "No limit reservation for this reference"


class ReservationConflict(Conflict):
    code, title = "reservation_conflict", "The reference already holds a different reservation"


class AnalyticsWindowInvalid(InvalidRequest):
    code, title = "analytics_window_invalid", "The analytics window is not valid"
