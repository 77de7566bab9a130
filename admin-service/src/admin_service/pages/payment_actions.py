"""Capture, cancel and refund from a page: payment-service's API, as the signed-in person."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request

from admin_service.pages.session import PageSession
from admin_service.pages.upstream import Upstream

PAYMENT_ACTIONS = "^(capture|cancel|refunds)$"
DONE = {"capture": "Captured", "cancel": "Cancelled", "refunds": "Refund requested"}


def problem_detail(response: Any) -> str:
    try:
        return str(response.json().get("detail") or response.status_code)
    except (ValueError, AttributeError):
        return str(response.status_code)


async def act_on_payment(
    request: Request,
    session: PageSession,
    up: Upstream,
    *,
    payment_id: uuid.UUID,
    action: str,
    amount: int | None,
) -> str:
    """Send the action with the person's own token (payment-service checks ownership or the
    admin role, and audits it as them) and a fresh Idempotency-Key; returns the notice."""
    answer = await up.call(
        request,
        session,
        "payment",
        "POST",
        f"/payments/{payment_id}/{action}",
        json={"amount": amount} if amount else {},
        headers={"Idempotency-Key": f"page-{uuid.uuid4()}"},
    )
    if answer.status_code < 300:
        return f"{DONE[action]}."
    return f"Not done: {problem_detail(answer)}"
