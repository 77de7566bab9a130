"""Provider webhooks: Stripe (`Stripe-Signature`), PayPal (transmission signature), SSLCommerz (IPN).

Each is verified the provider's way before anything is read from it; an event that does not
verify is answered 400 and changes nothing; a verified one is applied once (by event id).
"""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Request

from paygate_common.db import SessionDep, unit_of_work
from paygate_common.errors import ServiceUnavailable, problem
from payment_service.api.schemas import WebhookAck
from payment_service.connectors.base import ProviderUnavailable, WebhookUpdate, as_uuid
from payment_service.connectors.provider_http import (
    ProviderUnreachable,
    UnknownProviderStatus,
    WebhookRejected,
    decimal_to_minor,
)
from payment_service.connectors.sslcommerz import protocol as sslcommerz_protocol
from payment_service.domain.webhooks import (
    InvalidSignature,
    InvalidWebhookEvent,
    apply_stripe_event,
    apply_update,
    find_payment,
    verify_stripe_signature,
)
from payment_service.settings import Settings
from payment_service.store import payments as store

log = logging.getLogger("payment_service.webhooks")

router = APIRouter(tags=["webhooks"])


class ProviderCallbackUnavailable(ServiceUnavailable):
    code, title = "provider_unavailable", "The provider could not be reached to verify this"


@router.post(
    "/webhooks/stripe",
    response_model=WebhookAck,
    summary="Stripe's webhook (no JWT; verified by Stripe-Signature)",
    responses={400: problem("invalid_signature, stale_signature or not an event")},
)
async def stripe_webhook(
    request: Request,
    session: SessionDep,
    stripe_signature: Annotated[str | None, Header(alias="Stripe-Signature")] = None,
) -> WebhookAck:
    settings: Settings = request.app.state.settings
    payload = await request.body()
    secrets = [settings.stripe_webhook_secret.get_secret_value()] + [
        s.get_secret_value() for s in settings.stripe_webhook_previous_secrets
    ]
    verify_stripe_signature(
        payload,
        stripe_signature,
        secrets,
        tolerance_seconds=settings.webhook_tolerance_seconds,
    )
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise InvalidWebhookEvent("The body is not JSON") from None
    if not isinstance(event, dict):
        raise InvalidWebhookEvent("The body is not a JSON object")
    applied = await apply_stripe_event(
        session,
        event,
        connector=request.app.state.stripe_connector,
        capture_window_seconds=settings.capture_window_seconds,
    )
    return WebhookAck(duplicate=not applied)


def _rejected(provider: str, reason: str, detail: str) -> InvalidSignature:
    log.warning("%s callback rejected: %s %s", provider, reason, detail)
    return InvalidSignature(f"The {provider} callback did not verify ({reason})", reason=reason)


@router.post(
    "/webhooks/paypal",
    response_model=WebhookAck,
    summary="PayPal's webhook (no JWT; verified by PAYPAL-TRANSMISSION-SIG or PayPal's API)",
    responses={
        400: problem("`invalid_signature` (with the reason) or not an event"),
        503: {
            "description": "PayPal (its certificate or order) could not be reached; PayPal retries"
        },
    },
)
async def paypal_webhook(request: Request) -> WebhookAck:
    """Verified first (nothing is applied otherwise), deduplicated by PayPal's event id, and
    applied from the order as PayPal holds it now (events arrive out of order)."""
    settings: Settings = request.app.state.settings
    connector, transport = request.app.state.provider_pairs["paypal"]
    body = await request.body()
    try:
        notice = await transport.client.verify_webhook(dict(request.headers), body)
    except WebhookRejected as exc:
        raise _rejected("paypal", exc.reason, exc.detail) from None
    except ProviderUnreachable as exc:
        raise ProviderCallbackUnavailable("PayPal could not be reached to verify") from exc
    update = connector.parse_webhook(notice.event)
    sessionmaker = request.app.state.sessionmaker
    async with unit_of_work(sessionmaker) as session:
        payment = (
            await find_payment(
                session, update.provider_reference, update.payment_id, provider="paypal"
            )
            if update is not None
            else None
        )
    order = None
    if payment is not None and payment.provider_reference:
        try:
            order = await transport.retrieve_payment(payment.provider_reference)
        except ProviderUnavailable as exc:
            raise ProviderCallbackUnavailable("PayPal could not be reached") from exc
    follow_up = False
    async with unit_of_work(sessionmaker) as session:
        if not await store.record_webhook_event(
            session, event_id=notice.event_id, provider="paypal", event_type=notice.event_type
        ):
            log.info("paypal webhook %s (%s) already applied", notice.event_id, notice.event_type)
            return WebhookAck(duplicate=True)
        if payment is None or order is None:
            log.info(
                "paypal webhook %s (%s) is for no payment of ours",
                notice.event_id,
                notice.event_type,
            )
            return WebhookAck()
        await store.link_webhook_event(session, notice.event_id, payment.id)
        current = connector.parse_authorize_response(order)
        follow_up = current.raw_status == "APPROVED"
        units = order.get("purchase_units") or [{}]
        amount = units[0].get("amount") or {}
        await apply_update(
            session,
            payment,
            WebhookUpdate(
                provider_reference=payment.provider_reference,
                payment_id=payment.id,
                # an approved order is completed below, by the same path as the return route
                payment=None if follow_up else current,
                refunds=tuple(
                    connector.parse_refund_response(r)
                    for r in (units[0].get("payments") or {}).get("refunds") or []
                ),
                amount=_minor(amount.get("value"), amount.get("currency_code")),
                currency=str(amount.get("currency_code") or "").lower() or None,
            ),
            event_id=notice.event_id,
            capture_window_seconds=settings.capture_window_seconds,
        )
    if follow_up:
        try:
            await request.app.state.redirects.complete(payment.id, provider="paypal")
        except ProviderUnavailable:
            log.warning(
                "paypal webhook %s: completing payment %s failed", notice.event_id, payment.id
            )
    return WebhookAck()


def _minor(value: object, currency: object) -> int | None:
    try:
        return decimal_to_minor(str(value), str(currency))
    except (UnknownProviderStatus, KeyError):
        return None


@router.post(
    "/webhooks/sslcommerz",
    response_model=WebhookAck,
    summary="SSLCommerz's IPN (no JWT; verify_sign AND the validation API, amounts compared)",
    responses={
        400: {
            "description": "`invalid_signature` (with the reason: signature, amount, currency, "
            "tran_id) or not an IPN; nothing is applied"
        },
        503: {
            "description": "SSLCommerz's validation API could not be reached; the IPN is retried"
        },
    },
)
async def sslcommerz_ipn(request: Request) -> WebhookAck:
    fields = {k: str(v) for k, v in (await request.form()).items()}
    payment_id = as_uuid(fields.get("tran_id"))
    if payment_id is None:
        raise InvalidWebhookEvent("The IPN has no tran_id of ours")
    return await confirm_sslcommerz(request, payment_id, fields)


async def confirm_sslcommerz(
    request: Request, payment_id: uuid.UUID, fields: dict[str, str]
) -> WebhookAck:
    """An SSLCommerz notification (IPN, or the browser's POST to our success URL) applied once."""
    if fields.get("tran_id") != str(payment_id):
        raise _rejected("sslcommerz", "tran_id_mismatch", str(fields.get("tran_id")))
    settings: Settings = request.app.state.settings
    try:
        # the signature first, whatever the payment's state: a forged notification is refused
        # even when it could not change anything any more
        sslcommerz_protocol.check_ipn_signature(
            fields, settings.sslcommerz_store_password.get_secret_value()
        )
    except WebhookRejected as exc:
        raise _rejected("sslcommerz", exc.reason, f"payment {payment_id}: {exc.detail}") from None
    event_id = f"sslcommerz:{fields.get('val_id') or fields.get('bank_tran_id') or payment_id}"
    try:
        row = await request.app.state.redirects.complete(
            payment_id, provider="sslcommerz", callback=fields, event_id=event_id
        )
    except WebhookRejected as exc:
        raise _rejected("sslcommerz", exc.reason, f"payment {payment_id}: {exc.detail}") from None
    except ProviderUnavailable as exc:
        raise ProviderCallbackUnavailable("SSLCommerz could not be reached to validate") from exc
    if row is None:
        raise InvalidWebhookEvent("The IPN names no SSLCommerz payment of ours")
    return WebhookAck()
