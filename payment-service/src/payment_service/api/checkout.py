"""`/checkout/…`: the hosted checkout page a customer pays on, its own calls, and the button script.

Reached at the gateway root without a JWT (the customer's browser has none): the page is bound
to one payment by its unguessable id, and its calls by the signed page token
(`web.check_page_token`). No card data ever reaches these routes — Stripe.js turns the card
into a `pm_…` in the browser and only that token is posted here.
"""

from __future__ import annotations

import logging
import uuid
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, ConfigDict
from starlette.responses import JSONResponse, RedirectResponse, Response

from paygate_common.db import SessionDep, unit_of_work
from paygate_common.events import PaymentStatus
from payment_service.api.schemas import PaymentMethodToken, ProviderName
from payment_service.connectors.base import ProviderUnavailable
from payment_service.connectors.registry import CONNECTORS
from payment_service.domain import checkout as domain
from payment_service.domain.errors import ProviderNotAvailable
from payment_service.domain.payments import apply_result
from payment_service.domain.states import PaymentState, public_status
from payment_service.settings import Settings
from payment_service.store.payments import PaymentRow
from payment_service.web import (
    TOKEN_HEADER,
    base_path,
    check_page_token,
    display_amount,
    issue_page_token,
    origin_of,
    render,
    security_headers,
)

log = logging.getLogger("payment_service.checkout")

router = APIRouter(prefix="/checkout", tags=["checkout"], include_in_schema=False)

S = PaymentState
# The card is taken with Stripe.js; these send the customer to the provider's own page.
REDIRECT_PROVIDERS = ("paypal", "sslcommerz")
# Ended, one way or the other: the page shows the result and links back to the merchant.
PAID = {
    PaymentStatus.SUCCEEDED,
    PaymentStatus.REQUIRES_CAPTURE,
    PaymentStatus.PARTIALLY_REFUNDED,
    PaymentStatus.REFUNDED,
}
UNPAID = {PaymentStatus.FAILED, PaymentStatus.CANCELLED}
PageToken = Annotated[str | None, Header(alias=TOKEN_HEADER)]


class CheckoutPay(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # A Stripe.js PaymentMethod (never a card number) — or a redirect provider to pay with.
    payment_method: PaymentMethodToken | None = None
    provider: ProviderName | None = None


def checkout_base_url(request: Request) -> str:
    """Where a browser reaches the gateway root: the setting, else what the gateway forwarded."""
    settings: Settings = request.app.state.settings
    if settings.checkout_base_url:
        return settings.checkout_base_url.rstrip("/")
    host = request.headers.get("x-forwarded-host")
    if host:
        proto = request.headers.get("x-forwarded-proto", "http")
        return f"{'https' if proto == 'https' else 'http'}://{host}"
    return str(request.base_url).rstrip("/")


def enabled_providers(request: Request) -> list[str]:
    """Providers taking new payments now (`payments.providers`, live: admin-service can change
    them), the default first, that the connector registry knows."""
    choice = request.app.state.provider_choice
    names = [choice.default, *sorted(choice.enabled)]
    return [n for n in dict.fromkeys(names) if n in choice.enabled and n in CONNECTORS]


def _offers(request: Request) -> tuple[bool, list[str]]:
    """(a card form with Stripe.js?, the redirect providers' buttons)."""
    enabled = enabled_providers(request)
    return "stripe" in enabled, [p for p in REDIRECT_PROVIDERS if p in enabled]


def _return_link(payment: PaymentRow) -> str | None:
    """The merchant's return_url with the outcome added (`payment_id`, `status`), as Stripe does;
    the merchant confirms it with GET /payments/{id} before shipping anything."""
    if not payment.return_url:
        return None
    parts = urlsplit(str(payment.return_url))
    status = public_status(payment.status).value
    extra = urlencode({"payment_id": str(payment.id), "status": status})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _view(payment: PaymentRow) -> dict[str, Any]:
    return {
        "payment": payment,
        "amount": display_amount(payment.amount, payment.currency),
        "description": payment.description,
        "merchant_host": urlsplit(payment.return_url or "").netloc,
        "return_link": _return_link(payment),
    }


def _not_found(request: Request) -> Response:
    return render(request, "checkout/not_found.html.j2", merchant_origin=None, status_code=404)


async def _load(session: Any, payment_id: uuid.UUID) -> PaymentRow | None:
    try:
        return await domain.checkout_for(session, payment_id)
    except domain.CheckoutNotFound:
        return None


@router.get("/{payment_id}")
async def checkout_page(request: Request, payment_id: uuid.UUID, session: SessionDep) -> Response:
    """The page: amount, description, the card form and provider buttons (or where it stands)."""
    settings: Settings = request.app.state.settings
    payment = await _load(session, payment_id)
    if payment is None:
        return _not_found(request)
    status = public_status(payment.status)
    if status in PAID or status in UNPAID:
        return RedirectResponse(
            f"{base_path(request)}/{payment.id}/complete",
            status_code=303,
            headers=security_headers(settings, merchant_origin=origin_of(payment.return_url)),
        )
    card, redirect_providers = _offers(request)
    view = _view(payment)
    is_open = domain.is_open(payment, ttl_seconds=settings.checkout_ttl_seconds)
    return render(
        request,
        "checkout/pay.html.j2",
        merchant_origin=origin_of(payment.return_url),
        open=is_open,
        # Never paid and too old to be: nothing will happen here any more.
        expired=not is_open and domain.is_unpaid(payment),
        page_token=issue_page_token(settings, payment.id),
        card=card,
        redirect_providers=redirect_providers,
        stripe_js_url=settings.checkout_stripe_js_url(),
        stripe_publishable_key=settings.stripe_publishable_key,
        **view,
    )


@router.get("/{payment_id}/complete")
async def complete_page(request: Request, payment_id: uuid.UUID, session: SessionDep) -> Response:
    """Where the page ends: paid or not, with the way back to the merchant."""
    payment = await _load(session, payment_id)
    if payment is None:
        return _not_found(request)
    status = public_status(payment.status)
    if status not in PAID and status not in UNPAID:
        # Not settled yet (a provider's return arrives before its answer): the page waits.
        return RedirectResponse(f"{base_path(request)}/{payment.id}", status_code=303)
    view = _view(payment)
    return render(
        request,
        "checkout/complete.html.j2",
        merchant_origin=origin_of(payment.return_url),
        paid=status in PAID,
        status=status.value,
        authorised_only=status is PaymentStatus.REQUIRES_CAPTURE,
        **view,
    )


@router.post("/{payment_id}/pay", status_code=202)
async def pay(
    request: Request, payment_id: uuid.UUID, body: CheckoutPay, token: PageToken = None
) -> Response:
    """The customer's choice: a Stripe.js `pm_…`, or a redirect provider. Pays at most once."""
    settings: Settings = request.app.state.settings
    check_page_token(settings, payment_id, token)
    card, redirect_providers = _offers(request)
    if body.payment_method is not None:
        if not card or body.provider not in (None, "stripe"):
            raise ProviderNotAvailable("Cards are taken with Stripe.js here")
        provider = "stripe"
    elif body.provider in redirect_providers:
        provider = body.provider
    else:
        raise ProviderNotAvailable("Give a payment_method from Stripe.js or an enabled provider")
    async with unit_of_work(request.app.state.sessionmaker) as session:
        payment = await domain.pay(
            session,
            payment_id,
            ttl_seconds=settings.checkout_ttl_seconds,
            provider=provider,
            payment_method_token=body.payment_method,
        )
    log.info("checkout %s: the customer chose %s", payment_id, provider)
    request.app.state.executor.wake()
    return _state_response(request, payment, action=None, status_code=202)


@router.get("/{payment_id}/state")
async def state(request: Request, payment_id: uuid.UUID, token: PageToken = None) -> Response:
    """Where the payment stands for the page, and what the customer must do next, if anything."""
    settings: Settings = request.app.state.settings
    check_page_token(settings, payment_id, token)
    async with request.app.state.sessionmaker() as session:
        payment = await domain.checkout_for(session, payment_id)
    return _state_response(request, payment, action=await _next_step(request, payment))


@router.post("/{payment_id}/authenticated")
async def authenticated(
    request: Request, payment_id: uuid.UUID, token: PageToken = None
) -> Response:
    """3-D Secure finished in the browser: read the outcome from the provider and apply it.

    (The provider's webhook says the same; whichever comes first moves the payment, the other
    finds it moved: both go through the guarded state table.)
    """
    settings: Settings = request.app.state.settings
    check_page_token(settings, payment_id, token)
    async with request.app.state.sessionmaker() as session:
        payment = await domain.checkout_for(session, payment_id)
    connector, transport = request.app.state.connector, request.app.state.transport
    if (
        payment.status == S.REQUIRES_ACTION
        and payment.provider_reference
        and payment.provider == connector.name
    ):
        try:
            raw = await transport.retrieve_payment(payment.provider_reference)
        except ProviderUnavailable as exc:
            log.warning("checkout %s: provider lookup after 3-D Secure failed: %s", payment_id, exc)
        else:
            result = connector.parse_authorize_response(raw)
            if result.status is not PaymentStatus.REQUIRES_ACTION:
                async with unit_of_work(request.app.state.sessionmaker) as session:
                    await apply_result(
                        session,
                        payment_id,
                        result,
                        from_states=(S.REQUIRES_ACTION,),
                        capture_window_seconds=settings.capture_window_seconds,
                    )
        async with request.app.state.sessionmaker() as session:
            payment = await domain.checkout_for(session, payment_id)
    return _state_response(request, payment, action=await _next_step(request, payment))


async def _next_step(request: Request, payment: PaymentRow) -> dict[str, Any] | None:
    """For a payment the provider holds in requires_action: 3-D Secure with Stripe.js (its
    PaymentIntent's client secret, read now and never stored), or the provider's own page."""
    if payment.status != S.REQUIRES_ACTION or not payment.provider_reference:
        return None
    redirect = (payment.next_action or {}).get("redirect_to_url")
    if isinstance(redirect, dict) and redirect.get("url"):
        return {"type": "redirect", "url": str(redirect["url"])}
    connector, transport = request.app.state.connector, request.app.state.transport
    if payment.provider != "stripe" or connector.name != "stripe":
        return None
    try:
        raw = await transport.retrieve_payment(payment.provider_reference)
    except ProviderUnavailable:
        return None
    secret = raw.get("client_secret")
    if raw.get("status") != "requires_action" or not secret:
        return None
    return {"type": "stripe_authentication", "client_secret": str(secret)}


def _state_response(
    request: Request,
    payment: PaymentRow,
    *,
    action: dict[str, Any] | None,
    status_code: int = 200,
) -> Response:
    status = public_status(payment.status)
    done = status in PAID or status in UNPAID
    body = {
        "payment_id": str(payment.id),
        "status": status.value,
        "done": done,
        "action": action,
        "complete_url": f"{base_path(request)}/{payment.id}/complete",
    }
    return JSONResponse(body, status_code=status_code, headers={"Cache-Control": "no-store"})
