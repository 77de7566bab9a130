"""`GET /payments/{id}`: a payment with its attempts, for its owner or an admin."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from paygate_common.auth import CurrentPrincipal
from paygate_common.db import SessionDep
from payment_service.api.schemas import PaymentAttemptRead, PaymentRead
from payment_service.domain import payments as domain

router = APIRouter(tags=["payments"])


@router.get(
    "/payments/{payment_id}",
    response_model=PaymentRead,
    summary="A payment and its provider attempts (owner or admin; 404 otherwise)",
    responses={404: {"description": "No such payment, or not yours"}},
)
async def read_payment(
    payment_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> PaymentRead:
    payment, attempts = await domain.get_payment_for(
        session, payment_id, user_id=principal.user_id, is_admin=principal.is_admin
    )
    return PaymentRead(
        **{k: v for k, v in payment._mapping.items() if k in PaymentRead.model_fields},
        attempts=[PaymentAttemptRead.model_validate(dict(a._mapping)) for a in attempts],
    )
