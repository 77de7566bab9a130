"""`/payments`: create, read, list, capture, cancel and refund — owner or admin only (others get 404)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from paygate_common.audit import Actor, record_audit
from paygate_common.auth import CurrentPrincipal, Principal
from paygate_common.db import SessionDep, unit_of_work
from paygate_common.errors import PaygateError, business_rule, problem
from paygate_common.events import AuditOutcome
from paygate_common.idempotency import IdempotencyKeyHeader, IdempotentRequest, idempotent_request
from paygate_common.limits import limits_client
from payment_service.api.checkout import checkout_base_url
from payment_service.api.schemas import (
    CaptureRequest,
    PaymentCreate,
    PaymentPageRead,
    PaymentRead,
    RefundCreate,
    RefundListRead,
    RefundRead,
)
from payment_service.domain import payments as domain
from payment_service.domain import refunds
from payment_service.domain.errors import PaymentNotFound
from payment_service.domain.payment_context import prepare_direct_payment
from payment_service.store import payments as store

router = APIRouter(tags=["payments"])

NOT_FOUND = problem("No such payment, or not the caller's (`payment_not_found`)")
IDEMPOTENCY = problem(
    "Same Idempotency-Key still in flight (`idempotency_key_in_progress`), "
    "or the payment is not in a state that allows this (`invalid_state`)"
)


def _idempotency(request: Request) -> dict[str, Any]:
    return {
        "sessionmaker": request.app.state.sessionmaker,
        "ttl_seconds": request.app.state.settings.idempotency_ttl_seconds,
    }


@asynccontextmanager
async def audited(
    request: Request,
    principal: Principal,
    *,
    action: str,
    payment_id: uuid.UUID,
    details: dict[str, Any],
) -> AsyncIterator[AsyncSession]:
    """The request's unit of work, with its `audit.event`: in it when the request is accepted,
    in a transaction of its own (outcome failed, or denied for a payment not theirs) when not."""
    actor = Actor.of(request, principal)
    sessionmaker = request.app.state.sessionmaker
    try:
        async with unit_of_work(sessionmaker) as session:
            yield session
            await record_audit(
                session,
                producer=domain.PRODUCER,
                action=action,
                entity_type="payment",
                entity_id=payment_id,
                actor=actor,
                details=details,
            )
    except PaygateError as exc:
        outcome = AuditOutcome.DENIED if isinstance(exc, PaymentNotFound) else AuditOutcome.FAILED
        async with unit_of_work(sessionmaker) as session:
            await record_audit(
                session,
                producer=domain.PRODUCER,
                action=action,
                entity_type="payment",
                entity_id=payment_id,
                actor=actor,
                outcome=outcome,
                details={**details, "code": exc.code},
            )
        raise


async def await_operation(request: Request, operation_id: uuid.UUID | None) -> None:
    """Send the operation now (after its commit) and wait, bounded, for the provider's answer."""
    if operation_id is None:
        return
    sender = request.app.state.operations
    await sender.send(operation_id)
    deadline = time.monotonic() + request.app.state.settings.operation_wait_seconds
    while time.monotonic() < deadline:
        async with request.app.state.sessionmaker() as session:
            operation = await store.get_operation(session, operation_id)
        if operation is None or operation.status not in ("queued", "in_flight"):
            return
        await asyncio.sleep(0.05)


@router.post(
    "/payments",
    status_code=202,
    response_model=PaymentRead,
    summary="Create a payment (authorised asynchronously; poll it or listen for payment.*)",
    responses={
        409: IDEMPOTENCY,
        422: business_rule(
            "payment_method_not_found",
            "amount_below_minimum",
            "provider_not_available",
            "payment_method_provider_mismatch",
            "unsupported_by_provider",
            "limit_exceeded",
            description="Invalid body, a payment method that is not the caller's, an amount "
            "under the provider's minimum charge for the currency, a provider not configured "
            "or not offering this, over a limit, or `idempotency_key_reused`",
        ),
        503: {
            "description": "`user_service_unavailable` (the method cannot be checked now) or "
            "`limits_unavailable` (limits cannot be checked: creation fails closed)"
        },
    },
)
async def create_payment(
    request: Request,
    payload: PaymentCreate,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKeyHeader,
) -> Response:
    async with idempotent_request(
        request,
        key=idempotency_key,
        scope=principal.user_id,
        fingerprint=payload.model_dump(mode="json"),
        **_idempotency(request),
    ) as idem:
        if idem.replay is not None:
            return idem.replay
        direct = await prepare_direct_payment(
            users=request.app.state.users,
            providers=request.app.state.providers,
            user_id=principal.user_id,
            amount=payload.amount,
            currency=payload.currency,
            provider=payload.provider,
            capture_method=payload.capture_method,
            payment_method_id=payload.payment_method_id,
            payment_method_token=payload.payment_method,
            description=payload.description,
            metadata=payload.metadata,
            return_url=str(payload.return_url) if payload.return_url else None,
            checkout=payload.checkout,
        )
        async with unit_of_work(request.app.state.sessionmaker) as session:
            payment = await domain.create_payment(
                session,
                direct,
                checkout_base_url=checkout_base_url(request) if payload.checkout else None,
            )
            if request.app.state.settings.limits_enabled:
                # In the payment's transaction: a refusal (422 `limit_exceeded`) or no answer
                # (503 `limits_unavailable`, fail closed) rolls the payment back, so the
                # executor never sees it. A payment of an order was reserved with its order.
                await limits_client(request.app).reserve(
                    reference_id=payment.id,
                    user_id=principal.user_id,
                    amount=payload.amount,
                    currency=payload.currency,
                )
            idem.session = session
            response = await idem.respond(
                PaymentRead.of(payment),
                status_code=202,
                headers={"Location": f"/payments/{payment.id}"},
            )
        request.app.state.executor.wake()
        return response


@router.get(
    "/payments",
    response_model=PaymentPageRead,
    summary="The caller's payments, newest first",
    responses={404: problem("`cursor` names no payment of the caller's")},
)
async def list_payments(
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    limit: Annotated[int | None, Query(ge=1, le=100)] = None,
    cursor: uuid.UUID | None = None,
) -> PaymentPageRead:
    items, next_cursor = await domain.list_payments(
        session,
        user_id=principal.user_id,
        is_admin=principal.is_admin,
        limit=limit or request.app.state.settings.list_default_limit,
        cursor=cursor,
    )
    return PaymentPageRead(
        items=[PaymentRead.of(p) for p in items],
        next_cursor=str(next_cursor) if next_cursor else None,
    )


@router.get(
    "/payments/{payment_id}",
    response_model=PaymentRead,
    summary="A payment and its provider attempts (owner or admin; 404 otherwise)",
    responses={404: NOT_FOUND},
)
async def read_payment(
    payment_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> PaymentRead:
    payment, attempts = await domain.get_payment_for(
        session, payment_id, user_id=principal.user_id, is_admin=principal.is_admin
    )
    return PaymentRead.of(payment, attempts)


@router.post(
    "/payments/{payment_id}/capture",
    response_model=PaymentRead,
    summary="Capture an authorisation, all of it or less (the rest is released)",
    responses={
        404: NOT_FOUND,
        409: IDEMPOTENCY,
        422: problem("`amount_exceeds_capturable`, `unsupported_by_provider`"),
    },
)
async def capture_payment(
    request: Request,
    payment_id: uuid.UUID,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKeyHeader,
    payload: CaptureRequest | None = None,
) -> Response:
    body = payload or CaptureRequest()

    async def capture(session: AsyncSession) -> uuid.UUID | None:
        operation = await domain.request_capture(session, payment_id, amount=body.amount)
        operation_id: uuid.UUID = operation.id
        return operation_id

    return await _payment_command(
        request,
        principal,
        payment_id,
        idempotency_key,
        action="payment.capture_requested",
        fingerprint=body.model_dump(mode="json"),
        details={"amount": body.amount},
        act=capture,
        respond=lambda idem: _respond_with_payment(request, idem, principal, payment_id),
    )


@router.post(
    "/payments/{payment_id}/cancel",
    response_model=PaymentRead,
    summary="Void a payment before any money is captured",
    responses={404: NOT_FOUND, 409: IDEMPOTENCY, 422: problem("`unsupported_by_provider`")},
)
async def cancel_payment(
    request: Request,
    payment_id: uuid.UUID,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKeyHeader,
) -> Response:
    async def void(session: AsyncSession) -> uuid.UUID | None:
        operation = await domain.request_void(session, payment_id)
        return operation.id if operation else None

    return await _payment_command(
        request,
        principal,
        payment_id,
        idempotency_key,
        action="payment.cancel_requested",
        fingerprint={},
        details={},
        act=void,
        respond=lambda idem: _respond_with_payment(request, idem, principal, payment_id),
    )


async def _payment_command(
    request: Request,
    principal: Principal,
    payment_id: uuid.UUID,
    idempotency_key: str | None,
    *,
    action: str,
    fingerprint: dict[str, Any],
    details: dict[str, Any],
    act: Callable[[AsyncSession], Awaitable[uuid.UUID | None]],
    respond: Callable[[IdempotentRequest], Awaitable[Response]],
) -> Response:
    """What capture, cancel and refund share: an idempotent, audited request on a payment the
    caller may act on; `act` queues the provider operation (its id), sent and awaited (bounded)
    after the commit; `respond` answers (and stores the answer for the key)."""
    async with idempotent_request(
        request,
        key=idempotency_key,
        scope=principal.user_id,
        fingerprint={"payment_id": str(payment_id), **fingerprint},
        **_idempotency(request),
    ) as idem:
        if idem.replay is not None:
            return idem.replay
        async with audited(
            request, principal, action=action, payment_id=payment_id, details=details
        ) as session:
            await domain.payment_for(
                session, payment_id, user_id=principal.user_id, is_admin=principal.is_admin
            )
            operation_id = await act(session)
        await await_operation(request, operation_id)
        return await respond(idem)


async def _respond_with_payment(
    request: Request, idem: IdempotentRequest, principal: Principal, payment_id: uuid.UUID
) -> Response:
    async with unit_of_work(request.app.state.sessionmaker) as session:
        payment = await domain.payment_for(
            session, payment_id, user_id=principal.user_id, is_admin=principal.is_admin
        )
        idem.session = session
        return await idem.respond(PaymentRead.of(payment), status_code=200)


@router.post(
    "/payments/{payment_id}/refunds",
    status_code=201,
    response_model=RefundRead,
    summary="Refund a captured payment, all that is left or part of it",
    responses={
        404: NOT_FOUND,
        409: IDEMPOTENCY,
        422: problem(
            "`refund_exceeds_captured` (never more than captured, even when "
            "requests race), `unsupported_by_provider`, `idempotency_key_reused`"
        ),
    },
)
async def create_refund(
    request: Request,
    payment_id: uuid.UUID,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKeyHeader,
    payload: RefundCreate | None = None,
) -> Response:
    body = payload or RefundCreate()
    refund_ids: list[uuid.UUID] = []

    async def refund(session: AsyncSession) -> uuid.UUID | None:
        created = await refunds.request_refund(
            session, payment_id, amount=body.amount, reason=body.reason
        )
        refund_ids.append(created.id)
        operation = await store.operation_for_refund(session, created.id)
        return operation.id if operation else None

    async def respond(idem: IdempotentRequest) -> Response:
        async with unit_of_work(request.app.state.sessionmaker) as session:
            current = await store.get_refund(session, refund_ids[0])
            idem.session = session
            return await idem.respond(
                RefundRead.of(current),
                status_code=201,
                headers={"Location": f"/payments/{payment_id}/refunds/{refund_ids[0]}"},
            )

    return await _payment_command(
        request,
        principal,
        payment_id,
        idempotency_key,
        action="payment.refund_requested",
        fingerprint=body.model_dump(mode="json"),
        details={"amount": body.amount},
        act=refund,
        respond=respond,
    )


@router.get(
    "/payments/{payment_id}/refunds",
    response_model=RefundListRead,
    summary="A payment's refunds, newest first",
    responses={404: NOT_FOUND},
)
async def list_refunds(
    payment_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> RefundListRead:
    rows = await refunds.refunds_for(
        session, payment_id, user_id=principal.user_id, is_admin=principal.is_admin
    )
    return RefundListRead(items=[RefundRead.of(r) for r in rows])


@router.get(
    "/payments/{payment_id}/refunds/{refund_id}",
    response_model=RefundRead,
    summary="One refund of a payment",
    responses={404: problem("`payment_not_found` or `refund_not_found`")},
)
async def read_refund(
    payment_id: uuid.UUID, refund_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> RefundRead:
    refund = await refunds.refund_for(
        session, payment_id, refund_id, user_id=principal.user_id, is_admin=principal.is_admin
    )
    return RefundRead.of(refund)
