"""`/provider-return/…`: where a redirect provider sends the customer's browser back (no JWT).

PayPal: `GET /provider-return/paypal/{payment_id}?token=<order>&PayerID=…` → the approved order
is captured (`automatic`) or authorised (`manual`); `?cancelled=1` (PayPal's cancel_url) voids
the payment. SSLCommerz: `POST /provider-return/sslcommerz/{payment_id}/{success|fail|cancel}`
with the signed transaction fields → verified and confirmed exactly like the IPN. The browser
then goes on to the merchant's `return_url` (`?payment_id=…&status=…`), or is shown the status.
The route moves money only for a payer who approved at the provider, once.
"""

from __future__ import annotations

import logging
import uuid
from typing import Annotated, Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Query, Request
from starlette.responses import RedirectResponse, Response

from paygate_common.db import unit_of_work
from paygate_common.errors import InvalidRequest, problem
from payment_service.api.payments import await_operation
from payment_service.api.schemas import PaymentReturnRead
from payment_service.api.webhooks import ProviderCallbackUnavailable, confirm_sslcommerz
from payment_service.connectors.base import ProviderUnavailable
from payment_service.domain import payments as domain
from payment_service.domain.errors import InvalidState, PaymentNotFound
from payment_service.domain.states import public_status
from payment_service.store import payments as store
from payment_service.web import PAGE_PREFIX
from payment_service.workers.redirects import ReturnMismatch

log = logging.getLogger("payment_service.provider_returns")

router = APIRouter(prefix="/provider-return", tags=["provider returns"])


class ReturnNotValid(InvalidRequest):
    code, title = "invalid_return", "This return does not belong to the payment"


async def _back_to_merchant(request: Request, payment_id: uuid.UUID) -> Response:
    async with unit_of_work(request.app.state.sessionmaker) as session:
        payment = await store.get_payment(session, payment_id)
    if payment is None:
        raise PaymentNotFound("No such payment")
    status = public_status(payment.status).value
    if payment.checkout:
        # Paid on the hosted page: it shows the outcome and links back to the merchant.
        return RedirectResponse(f"{PAGE_PREFIX}/{payment.id}/complete", status_code=303)
    if payment.return_url:
        parts = urlsplit(payment.return_url)
        query = "&".join(
            q
            for q in (parts.query, urlencode({"payment_id": str(payment.id), "status": status}))
            if q
        )
        return RedirectResponse(urlunsplit(parts._replace(query=query)), status_code=303)
    return Response(
        PaymentReturnRead(id=payment.id, status=status).model_dump_json(),
        media_type="application/json",
    )


@router.get(
    "/paypal/{payment_id}",
    summary="PayPal's return_url / cancel_url: complete (or cancel) the approved order",
    response_model=PaymentReturnRead,
    responses={
        303: {"description": "On to the merchant's return_url"},
        404: problem("`payment_not_found`"),
        422: problem("`invalid_return`: the token is not this payment's order"),
    },
)
async def paypal_return(
    request: Request,
    payment_id: uuid.UUID,
    token: Annotated[str, Query(max_length=64)],
    cancelled: Annotated[bool, Query()] = False,
) -> Response:
    if cancelled:
        await _cancel_at_payer_request(request, payment_id, token)
        return await _back_to_merchant(request, payment_id)
    try:
        row = await request.app.state.redirects.complete(
            payment_id, provider="paypal", reference=token
        )
    except ReturnMismatch:
        raise ReturnNotValid("The token is not this payment's PayPal order") from None
    except ProviderUnavailable as exc:
        raise ProviderCallbackUnavailable("PayPal could not be reached; reload to retry") from exc
    if row is None:
        raise PaymentNotFound("No such PayPal payment")
    return await _back_to_merchant(request, payment_id)


async def _cancel_at_payer_request(request: Request, payment_id: uuid.UUID, token: str) -> None:
    """The payer cancelled at PayPal: void the payment (nothing was approved, nothing held)."""
    operation = None
    async with unit_of_work(request.app.state.sessionmaker) as session:
        payment = await store.get_payment(session, payment_id)
        if payment is None or payment.provider != "paypal":
            raise PaymentNotFound("No such PayPal payment")
        if payment.provider_reference != token:
            raise ReturnNotValid("The token is not this payment's PayPal order")
        try:
            operation = await domain.request_void(
                session, payment_id, source="payer", reason="cancelled_by_payer"
            )
        except InvalidState:
            log.info("payment %s: payer cancelled, but it is %s", payment_id, payment.status)
    # sent now and waited for (bounded), as a cancel request through the API is
    await await_operation(request, operation.id if operation is not None else None)


@router.post(
    "/sslcommerz/{payment_id}/{outcome}",
    summary="SSLCommerz's success_url / fail_url / cancel_url (the browser POSTs signed fields)",
    response_model=PaymentReturnRead,
    responses={
        303: {"description": "On to the merchant's return_url"},
        400: problem("`invalid_signature`: the fields did not verify; nothing applied"),
    },
)
async def sslcommerz_return(
    request: Request, payment_id: uuid.UUID, outcome: Literal["success", "fail", "cancel"]
) -> Response:
    fields = {k: str(v) for k, v in (await request.form()).items()}
    if fields:
        await confirm_sslcommerz(request, payment_id, fields)
    return await _back_to_merchant(request, payment_id)
