"""The user's payment context from user-service, read once per new order and carried in `order.create`."""

from __future__ import annotations

import logging
import uuid

from pydantic import ValidationError

from order_service.domain.errors import PaymentMethodInvalid, UserDirectoryUnavailable
from paygate_common.http import DependencyUnavailable, ServiceClient
from paygate_common.internal.users import PAYMENT_CONTEXT_PATH, PaymentContextRead

log = logging.getLogger("order_service.payment_methods")


class PaymentMethods:
    """`GET /internal/users/{id}/payment-context[?payment_method_id=]` with a service token."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def context_for_order(
        self, user_id: uuid.UUID, payment_method_id: uuid.UUID | None
    ) -> PaymentContextRead | None:
        """What payment-service needs to charge the order, so it need not ask user-service again.

        A named method must be the user's own: 422 otherwise (another user's looks like no
        method at all), 503 while that cannot be checked. For the default method nothing is
        refused here: if user-service cannot answer now the order goes without a context
        (None) and payment-service asks for it when it charges, as it did before.
        """
        try:
            return await self._read(user_id, payment_method_id)
        except _NoContext:
            if payment_method_id is not None:
                raise PaymentMethodInvalid("No such payment method for this user") from None
            return None
        except UserDirectoryUnavailable:
            if payment_method_id is not None:
                raise
            log.warning("order of user %s goes without a payment context", user_id)
            return None

    async def _read(
        self, user_id: uuid.UUID, payment_method_id: uuid.UUID | None
    ) -> PaymentContextRead:
        params = {"payment_method_id": str(payment_method_id)} if payment_method_id else None
        try:
            response = await self.client.get(
                PAYMENT_CONTEXT_PATH.format(user_id=user_id), params=params
            )
        except DependencyUnavailable as exc:
            raise _unavailable() from exc
        if response.status_code == 404:
            raise _NoContext
        if response.is_error:
            log.error("user-service answered %d for a payment context", response.status_code)
            raise _unavailable()
        try:
            return PaymentContextRead.model_validate_json(response.content)
        except ValidationError as exc:
            log.error("user-service answered a payment context we cannot read: %s", exc)
            raise _unavailable() from exc


class _NoContext(Exception):
    """user-service knows no such user, or no such method of theirs (404)."""


def _unavailable() -> UserDirectoryUnavailable:
    return UserDirectoryUnavailable(
        "Payment methods cannot be checked right now; retry", headers={"Retry-After": "2"}
    )
