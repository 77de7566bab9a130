"""`POST /webhooks/stripe`: verified by `Stripe-Signature`, applied once, answered quickly."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Request

from paygate_common.db import SessionDep
from payment_service.api.schemas import WebhookAck
from payment_service.domain.webhooks import (
    InvalidWebhookEvent,
    apply_stripe_event,
    verify_stripe_signature,
)
from payment_service.settings import Settings

router = APIRouter(tags=["webhooks"])


@router.post(
    "/webhooks/stripe",
    response_model=WebhookAck,
    summary="Stripe's webhook (no JWT; verified by Stripe-Signature)",
    responses={400: {"description": "invalid_signature, stale_signature or not an event"}},
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
