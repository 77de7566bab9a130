"""Order errors with stable codes (rendered as problem+json by the shared handler)."""

from __future__ import annotations

from paygate_common.errors import Conflict, InvalidRequest, NotFound, ServiceUnavailable


class OrderNotFound(NotFound):
    # Also what a caller sees for someone else's order: existence is not disclosed.
    code, title = "order_not_found", "Order not found"


class InvalidOrderState(Conflict):
    code, title = "invalid_state", "The order is not in a state that allows this"


class RefundExceedsOrder(InvalidRequest):
    code, title = "refund_exceeds_captured", "The refund exceeds the order's amount"


class PaymentMethodInvalid(InvalidRequest):
    # The same answer for a method that does not exist and one that is someone else's.
    code, title = "payment_method_not_found", "No such payment method"


class UserDirectoryUnavailable(ServiceUnavailable):
    code, title = "user_service_unavailable", "Payment methods cannot be checked right now"
