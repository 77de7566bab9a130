"""Order errors with stable codes (rendered as problem+json by the shared handler)."""

from __future__ import annotations

from paygate_common.errors import Conflict, InvalidRequest, NotFound

# shared with the other caller of user-service's payment context; imported from here too
from paygate_common.errors import PaymentMethodInvalid as PaymentMethodInvalid
from paygate_common.errors import UserDirectoryUnavailable as UserDirectoryUnavailable


class OrderNotFound(NotFound):
    # Also what a caller sees for someone else's order: existence is not disclosed.
    code, title = "order_not_found", "Order not found"


class InvalidOrderState(Conflict):
    code, title = "invalid_state", "The order is not in a state that allows this"


class RefundExceedsOrder(InvalidRequest):
    code, title = "refund_exceeds_captured", "The refund exceeds the order's amount"
