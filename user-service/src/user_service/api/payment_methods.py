"""The caller's saved payment methods (provider tokens, brand, last4 and expiry only)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Response, status

from paygate_common.auth import CurrentPrincipal
from paygate_common.db import SessionDep
from paygate_common.errors import business_rule, problem
from user_service.api.deps import StripeCardsDep
from user_service.api.schemas import PaymentMethodCreate, PaymentMethodRead
from user_service.domain import payment_methods

router = APIRouter(
    prefix="/users/me/payment-methods",
    tags=["payment methods"],
    responses={401: problem("`token_missing`, `token_invalid` or `token_expired`")},
)

SAVE_ERRORS: dict[int | str, dict[str, Any]] = {
    402: business_rule("card_declined", description="The card was declined, with `decline_code`"),
    409: problem("`payment_method_exists`"),
    422: business_rule(
        "invalid_payment_method",
        description="A well-formed `pm_…` token Stripe does not know (or not a card),"
        " or `validation_error`",
    ),
    503: problem("`provider_unavailable`"),
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=PaymentMethodRead,
    summary="Save a Stripe payment method; the first one becomes the default",
    responses=SAVE_ERRORS,
)
async def save(
    body: PaymentMethodCreate,
    principal: CurrentPrincipal,
    session: SessionDep,
    stripe_cards: StripeCardsDep,
) -> PaymentMethodRead:
    method = await payment_methods.save_payment_method(
        session=session,
        stripe_cards=stripe_cards,
        user_id=principal.user_id,
        token=body.token,
        make_default=body.make_default,
    )
    return PaymentMethodRead.model_validate(method)


@router.get("", response_model=list[PaymentMethodRead], summary="The caller's saved methods")
async def list_saved(principal: CurrentPrincipal, session: SessionDep) -> list[PaymentMethodRead]:
    saved = await payment_methods.list_payment_methods(session=session, user_id=principal.user_id)
    return [PaymentMethodRead.model_validate(m) for m in saved]


@router.delete(
    "/{payment_method_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Forget a saved method (and detach it at Stripe)",
    responses={404: problem("`payment_method_not_found`")},
)
async def delete(
    payment_method_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: SessionDep,
    stripe_cards: StripeCardsDep,
) -> Response:
    await payment_methods.delete_payment_method(
        session=session,
        stripe_cards=stripe_cards,
        user_id=principal.user_id,
        payment_method_id=payment_method_id,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
