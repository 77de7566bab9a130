"""`/orders`: place an order (with `Idempotency-Key`), read it, its status, and list them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from order_service.api.deps import ValidOrder
from order_service.api.schemas import OrderCreate, OrderPageRead, OrderRead, OrderStatusRead
from order_service.domain import orders as domain
from paygate_common.auth import CurrentPrincipal
from paygate_common.db import SessionDep
from paygate_common.idempotency import IdempotencyKeyHeader, idempotent_request
from paygate_common.limits import limits_client

router = APIRouter(prefix="/orders", tags=["orders"])

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid access token (problem+json)"},
    404: {"description": "No such order, or not the caller's (problem+json `order_not_found`)"},
}


@router.post(
    "",
    status_code=201,
    response_model=OrderRead,
    summary="Place an order (pending until the payment settles)",
    responses={
        400: {"description": "Malformed JSON or Idempotency-Key (problem+json)"},
        401: PROBLEMS[401],
        409: {
            "description": "Same Idempotency-Key still in flight (`idempotency_key_in_progress`)"
        },
        422: {
            "description": "Invalid body, Idempotency-Key reused with another body, or over a "
            "limit (`limit_exceeded`)"
        },
        503: {"description": "Limits cannot be checked (`limits_unavailable`)"},
    },
)
async def create_order(
    request: Request,
    payload: OrderCreate,
    principal: CurrentPrincipal,
    session: SessionDep,
    idempotency_key: IdempotencyKeyHeader,
) -> Response:
    settings = request.app.state.settings
    async with idempotent_request(
        request,
        key=idempotency_key,
        scope=principal.user_id,
        session=session,
        ttl_seconds=settings.idempotency_ttl_seconds,
    ) as idem:
        if idem.replay is not None:
            return idem.replay
        order = await domain.place_order(
            session=session,
            user_id=principal.user_id,
            amount=payload.amount,
            currency=payload.currency,
            description=payload.description,
            payment_method_id=payload.payment_method_id,
        )
        if settings.limits_enabled:
            # In the order's transaction: a refusal (422) or no answer (503) rolls the order back.
            await limits_client(request.app).reserve(
                reference_id=order.id,
                user_id=order.user_id,
                amount=order.amount,
                currency=order.currency,
            )
        return await idem.respond(
            OrderRead.from_record(order),
            status_code=201,
            headers={"Location": f"/orders/{order.id}"},
        )


@router.get(
    "",
    response_model=OrderPageRead,
    summary="The caller's orders, newest first",
    responses={401: PROBLEMS[401], 422: {"description": "Bad limit or cursor"}},
)
async def list_orders(
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    limit: Annotated[int | None, Query(ge=1, le=100)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> OrderPageRead:
    page = await domain.list_orders(
        session=session,
        user_id=principal.user_id,
        limit=limit or request.app.state.settings.list_default_limit,
        cursor=cursor,
    )
    return OrderPageRead(
        items=[OrderRead.from_record(o) for o in page.items], next_cursor=page.next_cursor
    )


@router.get(
    "/{order_id}",
    response_model=OrderRead,
    summary="One order with its payment summary (owner or admin)",
    responses=PROBLEMS,
)
async def get_order(order: ValidOrder) -> OrderRead:
    return OrderRead.from_record(order)


@router.get(
    "/{order_id}/status",
    response_model=OrderStatusRead,
    summary="Just the order's status, for polling",
    responses=PROBLEMS,
)
async def get_order_status(order: ValidOrder) -> OrderStatusRead:
    return OrderStatusRead.model_validate({"id": order.id, "status": order.status})
