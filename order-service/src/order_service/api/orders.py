"""`/orders`: place, read, list, cancel and refund orders (mutations take `Idempotency-Key`)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from order_service.api.deps import ValidOrder
from order_service.api.schemas import (
    OrderCreate,
    OrderPageRead,
    OrderRead,
    OrderRefund,
    OrderStatusRead,
)
from order_service.domain import orders as domain
from order_service.events.publishing import PRODUCER
from order_service.settings import Settings
from paygate_common.audit import Actor, record_audit
from paygate_common.auth import CurrentPrincipal
from paygate_common.db import SessionDep
from paygate_common.deps import SettingsDep
from paygate_common.errors import business_rule, problem
from paygate_common.idempotency import IdempotencyKeyHeader, idempotent_request
from paygate_common.limits import limits_client

router = APIRouter(prefix="/orders", tags=["orders"])

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: problem("No valid access token (problem+json)"),
    404: problem("No such order, or not the caller's (problem+json `order_not_found`)"),
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
        422: business_rule(
            "payment_method_not_found",
            "amount_below_minimum",
            "limit_exceeded",
            description="Invalid body, a payment method that is not the caller's, an amount "
            "under the provider's minimum charge for the currency, over a limit, or "
            "Idempotency-Key reused with another body",
        ),
        503: {
            "description": "`user_service_unavailable` (the method cannot be checked now) or "
            "`limits_unavailable` (limits cannot be checked: creation fails closed)"
        },
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
        # The normalised body: "USD" and "usd" are the same order.
        fingerprint=payload.model_dump(mode="json"),
    ) as idem:
        if idem.replay is not None:
            return idem.replay
        order_id = uuid.uuid4()
        # Before the order's statement, so a refused order leaves no row and no event.
        context = await domain.check_new_order(
            methods=request.app.state.payment_methods,
            limits=limits_client(request.app) if settings.limits_enabled else None,
            order_id=order_id,
            user_id=principal.user_id,
            amount=payload.amount,
            currency=payload.currency,
            payment_method_id=payload.payment_method_id,
        )
        order = await domain.place_order(
            session=session,
            order_id=order_id,
            user_id=principal.user_id,
            amount=payload.amount,
            currency=payload.currency,
            description=payload.description,
            payment_method_id=payload.payment_method_id,
            context=context,
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
    responses={401: PROBLEMS[401], 422: problem("Bad limit or cursor")},
)
async def list_orders(
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep[Settings],
    limit: Annotated[int | None, Query(ge=1, le=100)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> OrderPageRead:
    page = await domain.list_orders(
        session=session,
        user_id=principal.user_id,
        limit=limit or settings.list_default_limit,
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


@router.post(
    "/{order_id}/cancel",
    response_model=OrderRead,
    summary="Cancel a pending or requires_action order (it is never charged afterwards)",
    responses={
        **PROBLEMS,
        409: problem("`invalid_state`: paid, failed, cancelled or refunded already"),
    },
)
async def cancel_order(
    request: Request,
    order: ValidOrder,
    principal: CurrentPrincipal,
    session: SessionDep,
    idempotency_key: IdempotencyKeyHeader,
) -> Response:
    async with idempotent_request(
        request,
        key=idempotency_key,
        scope=principal.user_id,
        session=session,
        ttl_seconds=request.app.state.settings.idempotency_ttl_seconds,
    ) as idem:
        if idem.replay is not None:
            return idem.replay
        cancelled = await domain.cancel_order(session=session, order=order)
        return await idem.respond(OrderRead.from_record(cancelled), status_code=200)


@router.post(
    "/{order_id}/refund",
    status_code=202,
    response_model=OrderRead,
    summary="Refund a paid order, in full or in part (the order is `refunded` once fully refunded)",
    responses={
        **PROBLEMS,
        409: problem("`invalid_state`: only a paid order can be refunded"),
        422: problem("`refund_exceeds_captured`, invalid body, Idempotency-Key reused"),
    },
)
async def refund_order(
    request: Request,
    order: ValidOrder,
    principal: CurrentPrincipal,
    session: SessionDep,
    idempotency_key: IdempotencyKeyHeader,
    payload: OrderRefund | None = None,
) -> Response:
    body = payload or OrderRefund()
    async with idempotent_request(
        request,
        key=idempotency_key,
        scope=principal.user_id,
        session=session,
        ttl_seconds=request.app.state.settings.idempotency_ttl_seconds,
        fingerprint={"order_id": str(order.id), **body.model_dump(mode="json")},
    ) as idem:
        if idem.replay is not None:
            return idem.replay
        refunding = await domain.request_refund(session=session, order=order, amount=body.amount)
        await record_audit(
            session,
            producer=PRODUCER,
            action="payment.refund_requested",
            entity_type="order",
            entity_id=order.id,
            actor=Actor.of(request, principal),
            details={"amount": body.amount, "payment_id": str(order.payment_id)},
        )
        return await idem.respond(OrderRead.from_record(refunding), status_code=202)
