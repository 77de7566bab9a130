"""Service-to-service endpoints (`/internal/*`): service token required, never routed publicly."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter

from paygate_common.auth import ServiceCaller
from paygate_common.db import SessionDep
from user_service.api.schemas import ChargeableMethod, ContactRead, PaymentContextRead, problem
from user_service.domain import accounts, payment_methods

router = APIRouter(prefix="/internal/users", tags=["internal"])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: problem("`service_token_invalid`"),
    404: problem("`user_not_found` or `payment_method_not_found`"),
}


@router.get(
    "/{user_id}/payment-context",
    response_model=PaymentContextRead,
    summary="What payment-service needs to charge a user (the named method, else the default)",
    responses=ERRORS,
)
async def payment_context(
    user_id: uuid.UUID,
    caller: ServiceCaller,
    session: SessionDep,
    payment_method_id: uuid.UUID | None = None,
) -> PaymentContextRead:
    context = await payment_methods.payment_context(
        session=session, user_id=user_id, payment_method_id=payment_method_id
    )
    user, method = context.user, context.payment_method
    return PaymentContextRead(
        user_id=user.id,
        email=user.email,
        full_name=user.full_name,
        provider_customer_id=user.stripe_customer_id,
        payment_method=None
        if method is None
        else ChargeableMethod(
            id=method.id,
            provider="stripe",
            token=method.provider_payment_method_id,
            brand=method.brand,
            last4=method.last4,
            exp_month=method.exp_month,
            exp_year=method.exp_year,
        ),
    )


@router.get(
    "/{user_id}/contact",
    response_model=ContactRead,
    summary="Where notification-service reaches a user",
    responses=ERRORS,
)
async def contact(user_id: uuid.UUID, caller: ServiceCaller, session: SessionDep) -> ContactRead:
    user = await accounts.get_user(session=session, user_id=user_id)
    return ContactRead(user_id=user.id, email=user.email, full_name=user.full_name)
