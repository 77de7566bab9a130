"""The user's payment context (Stripe customer and saved PaymentMethod) from user-service, and the checks of a new payment against it."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError

from paygate_common.http import DependencyUnavailable, ServiceClient
from paygate_common.internal.users import PAYMENT_CONTEXT_PATH, PaymentContextRead
from paygate_common.money import require_minimum_charge
from payment_service.connectors.base import Flow
from payment_service.connectors.base import require as require_flow
from payment_service.connectors.registry import UnknownProvider, connector_for
from payment_service.domain.errors import (
    PaymentMethodInvalid,
    PaymentMethodWrongProvider,
    ProviderNotAvailable,
    UserDirectoryUnavailable,
)
from payment_service.domain.payments import DirectPayment
from payment_service.domain.providers import ProviderChoice

log = logging.getLogger("payment_service.payment_context")


@dataclass(frozen=True)
class PaymentMethodContext:
    user_id: uuid.UUID
    provider_customer_id: str | None
    payment_method_id: uuid.UUID | None
    provider: str | None
    token: str


class UserServiceUnavailable(Exception):
    """user-service is down or misbehaving: try the payment again later, never drop it."""


class PaymentMethodUnavailable(Exception):
    """The user or the payment method does not exist: the payment cannot be charged."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class UserDirectory:
    """Reads `GET /internal/users/{id}/payment-context` with a service token."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def payment_context(
        self, user_id: uuid.UUID, payment_method_id: uuid.UUID | None
    ) -> PaymentMethodContext:
        params = {"payment_method_id": str(payment_method_id)} if payment_method_id else None
        try:
            response = await self.client.get(
                PAYMENT_CONTEXT_PATH.format(user_id=user_id), params=params
            )
        except DependencyUnavailable as exc:
            raise UserServiceUnavailable(str(exc)) from exc
        if response.status_code == 404:
            code = _problem_code(response.content) or "user_not_found"
            raise PaymentMethodUnavailable(code, "The user or payment method does not exist")
        if response.is_error:
            # 401/403 (a token problem) and 5xx are ours or theirs to fix; the order waits.
            log.error("user-service answered %d for a payment context", response.status_code)
            raise UserServiceUnavailable(f"user-service answered {response.status_code}")
        try:
            context = PaymentContextRead.model_validate_json(response.content)
        except ValidationError as exc:
            log.error("user-service answered a payment context we cannot read: %s", exc)
            raise UserServiceUnavailable("user-service answered an unreadable context") from exc
        method = context.payment_method
        if method is None or not method.token:
            raise PaymentMethodUnavailable(
                "payment_method_not_found", "The user has no payment method to charge"
            )
        return PaymentMethodContext(
            user_id=user_id,
            provider_customer_id=context.provider_customer_id,
            payment_method_id=method.id,
            provider=method.provider,
            token=method.token,
        )


class _Problem(BaseModel):
    """The part of a problem+json answer we read: its stable code."""

    code: str | None = None


def _problem_code(body: bytes) -> str | None:
    try:
        return _Problem.model_validate_json(body).code or None
    except ValidationError:
        return None


async def prepare_direct_payment(
    *,
    users: UserDirectory,
    providers: ProviderChoice,
    user_id: uuid.UUID,
    amount: int,
    currency: str,
    provider: str | None,
    capture_method: str,
    payment_method_id: uuid.UUID | None,
    payment_method_token: str | None,
    description: str | None,
    metadata: dict[str, str] | None,
    return_url: str | None,
    checkout: bool = False,
) -> DirectPayment:
    """Check a POST /payments body against its provider and the caller's own saved methods.

    The provider is the one named, else the saved method's (a method belongs to one
    provider), else the default. A `payment_method_id` that is not the caller's gets the same
    422 as one that does not exist: nothing tells a caller whether an id belongs to someone else.
    """
    method = None
    if payment_method_id is not None:
        method = await _saved_method(users, user_id, payment_method_id)
    chosen = provider or (method.provider if method and method.provider else None)
    chosen = chosen or providers.default
    if chosen not in providers.enabled:
        raise ProviderNotAvailable(
            f"The {chosen} provider does not take new payments here; enabled: "
            + ", ".join(sorted(providers.enabled)),
            provider=chosen,
        )
    try:
        connector = connector_for(chosen)
    except UnknownProvider:
        raise ProviderNotAvailable(f"No connector for {chosen}", provider=chosen) from None
    if method is not None and method.provider and method.provider != chosen:
        raise PaymentMethodWrongProvider(
            f"That saved method belongs to {method.provider}; it cannot pay through {chosen}",
            provider=chosen,
            payment_method_provider=method.provider,
        )
    if not connector.needs_payment_method and (payment_method_id or payment_method_token):
        raise PaymentMethodWrongProvider(
            f"{chosen} takes no payment method: the customer chooses how to pay on its page",
            provider=chosen,
        )
    require_flow(connector, Flow.AUTHORIZE)
    if capture_method == "manual":
        require_flow(connector, Flow.MANUAL_CAPTURE)
    require_minimum_charge(amount, currency, minimum=connector.minimum_amount(currency))
    # A checkout payment has no method yet: the customer brings one on the hosted page.
    if (
        connector.needs_payment_method
        and payment_method_token is None
        and method is None
        and not checkout
    ):
        method = await _saved_method(users, user_id, None)
    provider_customer_id = None
    if method is not None:
        payment_method_id = method.payment_method_id or payment_method_id
        if not checkout:
            # The check read the token already: the executor charges with it, no second call.
            payment_method_token = method.token
            provider_customer_id = method.provider_customer_id
    return DirectPayment(
        user_id=user_id,
        amount=amount,
        currency=currency,
        provider=chosen,
        capture_method=capture_method,
        payment_method_id=payment_method_id,
        payment_method_token=payment_method_token,
        description=description,
        metadata=metadata,
        return_url=return_url,
        checkout=checkout,
        provider_customer_id=provider_customer_id,
    )


async def _saved_method(
    users: UserDirectory, user_id: uuid.UUID, payment_method_id: uuid.UUID | None
) -> PaymentMethodContext:
    try:
        return await users.payment_context(user_id, payment_method_id)
    except PaymentMethodUnavailable:
        raise PaymentMethodInvalid(
            "No such payment method for this user"
            if payment_method_id
            else "The user has no saved payment method; give payment_method or save one"
        ) from None
    except UserServiceUnavailable as exc:
        raise UserDirectoryUnavailable(
            "Payment methods cannot be checked right now; retry", headers={"Retry-After": "2"}
        ) from exc
