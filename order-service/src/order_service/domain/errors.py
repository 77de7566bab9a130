"""Order errors with stable codes (rendered as problem+json by the shared handler)."""

from __future__ import annotations

from paygate_common.errors import InvalidRequest, NotFound


class OrderNotFound(NotFound):
    # Also what a caller sees for someone else's order: existence is not disclosed.
    code, title = "order_not_found", "Order not found"


class InvalidCursor(InvalidRequest):
    code, title = "invalid_cursor", "The pagination cursor is not valid"
