"""Limit reservations at transaction-service, for every service that creates a charge.

Before an order or a payment is created, its amount is reserved against the user's
per-transaction, daily and monthly limits (`POST /internal/limits/reservations` at
transaction-service, with a service token, idempotent by the reference id):

    await limits_client(request.app).reserve(
        reference_id=order.id, user_id=principal.user_id, amount=1999, currency="usd"
    )

Over a limit → `LimitExceeded` (422 `limit_exceeded`). transaction-service unreachable or
answering anything unexpected → `LimitsUnavailable` (503 `limits_unavailable`): creation fails
closed, a charge is never made unchecked. transaction-service releases the reservation itself
when the payment fails or is cancelled (from `payment.event`, by order id or payment id).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from paygate_common.errors import InvalidRequest, PaygateError, ServiceUnavailable
from paygate_common.http import ServiceClient, UpstreamStatusError
from paygate_common.settings import ServiceSettings

log = logging.getLogger("paygate.limits")

RESERVATIONS_PATH = "/internal/limits/reservations"
LIMITS_SERVICE = "transaction"


class LimitExceeded(InvalidRequest):
    """The charge would pass one of the user's limits (`limit`: per_transaction, daily, monthly)."""

    code, title = "limit_exceeded", "The amount exceeds a limit"


class LimitsUnavailable(ServiceUnavailable):
    """The limits could not be checked: the charge is refused rather than made unchecked."""

    code, title = "limits_unavailable", "Limits cannot be checked right now; try again"


class LimitsClient:
    """Reserves and releases amounts against users' limits at transaction-service."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        timeout: float = 2.0,
        retries: int = 2,
        base_url: str | None = None,
    ) -> None:
        self.http = ServiceClient(
            settings, target=LIMITS_SERVICE, timeout=timeout, retries=retries, base_url=base_url
        )

    async def reserve(
        self, *, reference_id: uuid.UUID, user_id: uuid.UUID, amount: int, currency: str
    ) -> dict[str, Any]:
        """Reserve once per `reference_id` (the order id, or the payment id of a direct payment)."""
        body = {
            "reference_id": str(reference_id),
            "user_id": str(user_id),
            "amount": amount,
            "currency": currency,
        }
        try:
            # Safe to resend: the endpoint is idempotent by reference_id.
            response = await self.http.post(RESERVATIONS_PATH, json=body, retry=True)
        except PaygateError as exc:
            raise LimitsUnavailable(dependency=LIMITS_SERVICE) from exc
        if response.status_code in (200, 201):
            data: dict[str, Any] = response.json()
            return data
        problem = _problem(response)
        if response.status_code == 422 and problem.get("code") == LimitExceeded.code:
            extra = {k: problem[k] for k in ("limit", "maximum", "remaining") if k in problem}
            raise LimitExceeded(problem.get("detail"), **extra)
        log.error(
            "limit reservation %s answered %d %s",
            reference_id,
            response.status_code,
            problem.get("code"),
        )
        raise LimitsUnavailable(dependency=LIMITS_SERVICE)

    async def release(self, reference_id: uuid.UUID) -> None:
        """Give a reservation back now (e.g. the charge was refused before it reached a provider)."""
        try:
            response = await self.http.delete(f"{RESERVATIONS_PATH}/{reference_id}")
        except PaygateError as exc:
            raise LimitsUnavailable(dependency=LIMITS_SERVICE) from exc
        if response.status_code not in (200, 404):
            raise LimitsUnavailable(dependency=LIMITS_SERVICE) from UpstreamStatusError(
                LIMITS_SERVICE, response
            )

    async def aclose(self) -> None:
        await self.http.aclose()


def _problem(response: Any) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def limits_client(app: Any) -> LimitsClient:
    """The app's client, made on first use from `app.state.settings` (one connection pool)."""
    client: LimitsClient | None = getattr(app.state, "limits_client", None)
    if client is None:
        client = LimitsClient(app.state.settings)
        app.state.limits_client = client
    return client


__all__ = ["LimitExceeded", "LimitsClient", "LimitsUnavailable", "limits_client"]
