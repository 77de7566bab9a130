"""Checks an order's payment method with user-service before the order is accepted."""

from __future__ import annotations

import logging
import uuid

from order_service.domain.errors import PaymentMethodInvalid, UserDirectoryUnavailable
from paygate_common.http import DependencyUnavailable, ServiceClient

log = logging.getLogger("order_service.payment_methods")


class PaymentMethods:
    """`GET /internal/users/{id}/payment-context?payment_method_id=` with a service token."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def check_owned(self, user_id: uuid.UUID, payment_method_id: uuid.UUID) -> None:
        """422 unless the method is the user's own (another user's looks like no method at all)."""
        try:
            response = await self.client.get(
                f"/internal/users/{user_id}/payment-context",
                params={"payment_method_id": str(payment_method_id)},
            )
        except DependencyUnavailable as exc:
            raise UserDirectoryUnavailable(
                "Payment methods cannot be checked right now; retry", headers={"Retry-After": "2"}
            ) from exc
        if response.status_code == 404:
            raise PaymentMethodInvalid("No such payment method for this user")
        if response.is_error:
            log.error("user-service answered %d for a payment context", response.status_code)
            raise UserDirectoryUnavailable(
                "Payment methods cannot be checked right now; retry", headers={"Retry-After": "2"}
            )
