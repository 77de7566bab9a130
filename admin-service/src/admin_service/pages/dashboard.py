"""The merchant dashboard (`/dashboard/…` at the gateway): payments, balance, webhooks, API keys.

Every call is made with the signed-in user's own token to the service that owns the data, so
a merchant sees exactly what the API would show them and nothing of anyone else's.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from starlette.responses import Response

from admin_service.pages.console import Csrf, sign_in_routes
from admin_service.pages.payment_actions import PAYMENT_ACTIONS, act_on_payment, problem_detail
from admin_service.pages.rendering import redirect, render
from admin_service.pages.session import AnySession, check_csrf
from admin_service.pages.upstream import UpstreamDep

router = APIRouter(prefix="/dashboard", include_in_schema=False)
sign_in_routes(router)


def _items(response: Any) -> list[dict[str, Any]]:
    if response.status_code != 200:
        return []
    body = response.json()
    items = body.get("items", []) if isinstance(body, dict) else body
    return list(items)


@router.get("/")
async def payments_page(
    request: Request,
    session: AnySession,
    up: UpstreamDep,
    status: Annotated[str | None, Query(pattern="^[a-z_]{1,32}$")] = None,
    notice: str | None = None,
) -> Response:
    # payment-service's list has no status filter: the newest page is filtered here
    payments = await up.call(request, session, "payment", "GET", "/payments", params={"limit": 100})
    balance = await up.call(request, session, "transaction", "GET", "/balance")
    history = await up.call(
        request, session, "transaction", "GET", "/transactions", params={"limit": 20}
    )
    return render(
        request,
        "dashboard/payments.html.j2",
        session=session,
        payments=[p for p in _items(payments) if not status or p.get("status") == status][:50],
        balances=_items(balance),
        transactions=_items(history),
        status=status or "",
        notice=notice,
        error=None if payments.status_code == 200 else "payment-service did not answer",
    )


@router.post("/payments/{payment_id}/{action}")
async def payment_action(
    request: Request,
    payment_id: uuid.UUID,
    action: Annotated[str, Path(pattern=PAYMENT_ACTIONS)],
    session: AnySession,
    up: UpstreamDep,
    csrf_token: Csrf = None,
    amount: Annotated[int | None, Form(gt=0)] = None,
) -> Response:
    check_csrf(session, csrf_token)
    notice = await act_on_payment(
        request, session, up, payment_id=payment_id, action=action, amount=amount
    )
    return redirect(request, f"/?notice={notice}")


@router.get("/webhooks")
async def webhooks_page(
    request: Request,
    session: AnySession,
    up: UpstreamDep,
    notice: str | None = None,
    secret: str | None = None,
) -> Response:
    settings = await up.call(request, session, "notification", "GET", "/webhooks/settings")
    deliveries = await up.call(
        request, session, "notification", "GET", "/webhooks", params={"limit": 50}
    )
    return render(
        request,
        "dashboard/webhooks.html.j2",
        session=session,
        endpoint=settings.json() if settings.status_code == 200 else None,
        deliveries=_items(deliveries),
        notice=notice,
        secret=secret,
    )


@router.get("/webhooks/deliveries")
async def deliveries_fragment(request: Request, session: AnySession, up: UpstreamDep) -> Response:
    """The delivery log alone, for the page to refresh itself without a reload."""
    deliveries = await up.call(
        request, session, "notification", "GET", "/webhooks", params={"limit": 50}
    )
    return render(
        request, "dashboard/_deliveries.html.j2", session=session, deliveries=_items(deliveries)
    )


@router.post("/webhooks/settings")
async def save_webhook_settings(
    request: Request,
    session: AnySession,
    up: UpstreamDep,
    url: Annotated[str, Form(max_length=2048)],
    csrf_token: Csrf = None,
    enabled_events: Annotated[str | None, Form(max_length=2000)] = None,
) -> Response:
    check_csrf(session, csrf_token)
    events = [e.strip() for e in (enabled_events or "").split(",") if e.strip()]
    body: dict[str, Any] = {"url": url, "enabled": True}
    if events:
        body["enabled_events"] = events
    answer = await up.call(request, session, "notification", "PUT", "/webhooks/settings", json=body)
    if answer.status_code >= 300:
        return await webhooks_page(
            request, session, up, notice=f"Not saved: {problem_detail(answer)}"
        )
    secret = answer.json().get("secret")
    if secret:  # shown once, on this answer only; never put in a URL
        return await webhooks_page(
            request,
            session,
            up,
            notice="Saved. Copy the signing secret now: it is not shown again.",
            secret=secret,
        )
    return redirect(request, "/webhooks?notice=Saved.")


@router.post("/webhooks/rotate-secret")
async def rotate_secret(
    request: Request, session: AnySession, up: UpstreamDep, csrf_token: Csrf = None
) -> Response:
    check_csrf(session, csrf_token)
    answer = await up.call(
        request, session, "notification", "POST", "/webhooks/settings/rotate-secret"
    )
    if answer.status_code >= 300:
        return redirect(request, f"/webhooks?notice=Not rotated: {problem_detail(answer)}")
    return await webhooks_page(
        request,
        session,
        up,
        notice="New secret; the old one keeps signing for 24 hours.",
        secret=answer.json().get("secret"),
    )


@router.post("/webhooks/{delivery_id}/retry")
async def retry_delivery(
    request: Request,
    delivery_id: uuid.UUID,
    session: AnySession,
    up: UpstreamDep,
    csrf_token: Csrf = None,
) -> Response:
    check_csrf(session, csrf_token)
    answer = await up.call(
        request, session, "notification", "POST", f"/webhooks/{delivery_id}/retry"
    )
    notice = (
        "Sending again." if answer.status_code < 300 else f"Not retried: {problem_detail(answer)}"
    )
    return redirect(request, f"/webhooks?notice={notice}")


@router.get("/api-keys")
async def api_keys_page(
    request: Request,
    session: AnySession,
    up: UpstreamDep,
    notice: str | None = None,
    new_key: str | None = None,
) -> Response:
    keys = await up.call(request, session, "user", "GET", "/api-keys")
    return render(
        request,
        "dashboard/api_keys.html.j2",
        session=session,
        keys=_items(keys),
        notice=notice,
        new_key=new_key,
    )


@router.post("/api-keys")
async def create_api_key(
    request: Request,
    session: AnySession,
    up: UpstreamDep,
    name: Annotated[str, Form(min_length=1, max_length=100)],
    csrf_token: Csrf = None,
) -> Response:
    check_csrf(session, csrf_token)
    answer = await up.call(
        request,
        session,
        "user",
        "POST",
        "/api-keys",
        json={"name": name},
        headers={"Idempotency-Key": f"dashboard-{uuid.uuid4()}"},
    )
    if answer.status_code >= 300:
        return await api_keys_page(
            request, session, up, notice=f"Not created: {problem_detail(answer)}"
        )
    return await api_keys_page(
        request,
        session,
        up,
        notice="Copy the key now: it is not shown again.",
        new_key=answer.json().get("key"),
    )


@router.post("/api-keys/{key_id}/revoke")
async def revoke_api_key(
    request: Request,
    key_id: uuid.UUID,
    session: AnySession,
    up: UpstreamDep,
    csrf_token: Csrf = None,
) -> Response:
    check_csrf(session, csrf_token)
    answer = await up.call(request, session, "user", "DELETE", f"/api-keys/{key_id}")
    notice = "Revoked." if answer.status_code < 300 else f"Not revoked: {problem_detail(answer)}"
    return redirect(request, f"/api-keys?notice={notice}")
