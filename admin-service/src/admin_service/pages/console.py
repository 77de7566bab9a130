"""The operator console (`/admin/…` at the gateway): overview, users, configuration, dead letters, health."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from pydantic import ValidationError
from starlette.responses import JSONResponse, Response

from admin_service.api.operations import UsersClient, operator_headers
from admin_service.domain import config as config_domain
from admin_service.domain.analytics import chart_series, fetch_analytics
from admin_service.domain.errors import ConfigInvalid
from admin_service.domain.health import SuiteHealth
from admin_service.pages.payment_actions import PAYMENT_ACTIONS, act_on_payment
from admin_service.pages.rendering import SECURITY_HEADERS, redirect, render
from admin_service.pages.session import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    AnySession,
    OperatorSession,
    PageSession,
    check_csrf,
    new_login_csrf,
    set_cookie,
)
from admin_service.pages.upstream import Upstream, UpstreamDep
from admin_service.store import config as config_store
from paygate_common.analytics import AnalyticsRead
from paygate_common.audit import Actor
from paygate_common.auth import Role
from paygate_common.config import CONFIG_KEYS
from paygate_common.db import SessionDep
from paygate_common.errors import UpstreamError
from paygate_common.events import PaymentStatus
from paygate_common.http import UpstreamStatusError, parse_answer
from paygate_common.internal.audit import (
    AUDIT_EVENTS_PATH,
    AUDIT_VERIFY_PATH,
    AuditRecordPage,
    VerifyRead,
)
from paygate_common.internal.notifications import DEAD_LETTERS_PATH, DeadLetterPage, DeadLetterRead
from paygate_common.internal.users import (
    USER_PATH,
    USERS_PATH,
    AdminUserPage,
    AdminUserRead,
    AdminUserUpdate,
)

Csrf = Annotated[str | None, Form(alias="csrf_token")]


def sign_in_routes(router: APIRouter) -> None:
    """The sign-in and sign-out pages; the console and the dashboard each mount them."""

    @router.get("/login", include_in_schema=False)
    async def login_page(request: Request) -> Response:
        token = new_login_csrf()
        response = render(request, "login.html.j2", login_csrf=token)
        set_cookie(response, request, LOGIN_CSRF_COOKIE, token, max_age=1800)
        return response

    @router.post("/login", include_in_schema=False)
    async def login(
        request: Request,
        up: UpstreamDep,
        email: Annotated[str, Form(max_length=320)],
        password: Annotated[str, Form(max_length=1024)],
        csrf_token: Csrf = None,
    ) -> Response:
        expected = request.cookies.get(LOGIN_CSRF_COOKIE)
        if not expected or csrf_token != expected:
            token = new_login_csrf()
            response = render(
                request,
                "login.html.j2",
                status_code=403,
                login_csrf=token,
                email=email,
                error="The form expired; try again.",
            )
            set_cookie(response, request, LOGIN_CSRF_COOKIE, token, max_age=1800)
            return response
        forwarded = request.headers.get("x-forwarded-for") or (
            request.client.host if request.client else ""
        )
        answer = await up.call(
            request,
            None,
            "user",
            "POST",
            "/auth/signin",
            json={"email": email, "password": password},
            headers={
                "X-Forwarded-For": forwarded,
                "User-Agent": request.headers.get("user-agent", ""),
            },
        )
        if answer.status_code != 200:
            problem = _problem(answer)
            message = {
                "account_disabled": "This account is disabled.",
                "too_many_attempts": "Too many attempts; wait a few minutes.",
            }.get(problem.get("code", ""), "Wrong email or password.")
            token = new_login_csrf()
            response = render(
                request,
                "login.html.j2",
                status_code=answer.status_code if answer.status_code in (401, 403, 429) else 401,
                login_csrf=token,
                email=email,
                error=message,
            )
            set_cookie(response, request, LOGIN_CSRF_COOKIE, token, max_age=1800)
            return response
        tokens = answer.json()
        signed_in: Response = redirect(request, "/")
        set_cookie(
            signed_in,
            request,
            SESSION_COOKIE,
            tokens["access_token"],
            max_age=int(tokens.get("expires_in", 900)),
        )
        signed_in.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
        return signed_in

    @router.post("/logout", include_in_schema=False)
    async def logout(request: Request, session: AnySession, csrf_token: Csrf = None) -> Response:
        check_csrf(session, csrf_token)
        response = redirect(request, "/login")
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response


def _problem(response: Any) -> dict[str, Any]:
    try:
        body = response.json()
        return body if isinstance(body, dict) else {}
    except ValueError:
        return {}


router = APIRouter(prefix="/console", include_in_schema=False)
sign_in_routes(router)


@router.get("/")
async def overview(request: Request, session: OperatorSession) -> Response:
    try:
        figures: AnalyticsRead | None = await fetch_analytics(request.app.state.transactions)
    except UpstreamError:
        figures = None  # the page says so instead of failing
    return render(
        request,
        "console/overview.html.j2",
        session=session,
        analytics=figures,
        chart_json=json.dumps(chart_series(figures) if figures else {"periods": []}),
        analytics_down=figures is None,
    )


@router.get("/users")
async def users_page(
    request: Request,
    session: OperatorSession,
    users: UsersClient,
    q: Annotated[str | None, Query(max_length=200)] = None,
    notice: str | None = None,
) -> Response:
    params = {k: v for k, v in {"q": q, "limit": 50}.items() if v is not None}
    try:
        page: AdminUserPage | None = await users.call_as(
            AdminUserPage, "GET", USERS_PATH, params=params
        )
    except UpstreamError:
        page = None  # the page says so instead of failing
    return render(
        request,
        "console/users.html.j2",
        session=session,
        users=page.items if page else [],
        q=q or "",
        notice=notice,
        error=None if page else "user-service did not answer",
    )


@router.post("/users/{user_id}")
async def update_user(
    request: Request,
    user_id: uuid.UUID,
    session: OperatorSession,
    users: UsersClient,
    csrf_token: Csrf = None,
    role: Annotated[Role | None, Form()] = None,
    disabled: Annotated[str | None, Form(pattern="^(true|false)$")] = None,
) -> Response:
    check_csrf(session, csrf_token)
    change = AdminUserUpdate(role=role, disabled=None if disabled is None else disabled == "true")
    try:
        await users.call_as(
            AdminUserRead,
            "PATCH",
            USER_PATH.format(user_id=user_id),
            json=change.model_dump(mode="json", exclude_none=True),
            headers=operator_headers(request, session.principal.user_id),
        )
        notice = "Saved."
    except UpstreamStatusError as exc:
        notice = f"Not saved: {_problem(exc.response).get('detail', exc.upstream_status)}"
    except UpstreamError:  # unreachable, or an answer outside AdminUserRead
        notice = "Not saved: user-service did not answer"
    return redirect(request, f"/users?notice={notice}")


async def search_payments(
    request: Request, session: PageSession, up: Upstream, *, q: str, status: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """By payment id, by the owner's email (user-service → their ledger history → each payment
    at payment-service, for its live state), or else the newest payments; then by status."""
    found: list[dict[str, Any]] = []
    try:
        payment_id: uuid.UUID | None = uuid.UUID(q)
    except ValueError:
        payment_id = None
    if payment_id is not None:
        one = await up.call(request, session, "payment", "GET", f"/payments/{payment_id}")
        found = [one.json()] if one.status_code == 200 else []
        if one.status_code not in (200, 404):
            return [], "payment-service did not answer"
    elif q:
        try:
            people = await request.app.state.users.call_as(
                AdminUserPage, "GET", USERS_PATH, params={"q": q, "limit": MAX_OWNERS}
            )
        except UpstreamError:
            return [], "user-service did not answer"
        ids: list[str] = []
        for person in people.items:
            params = {"user_id": str(person.id), "limit": MAX_PAYMENTS, **_only(status)}
            history = await up.call(
                request, session, "transaction", "GET", "/transactions", params=params
            )
            if history.status_code == 200:
                ids += [t["id"] for t in history.json().get("items", [])]
        answers = await asyncio.gather(
            *(
                up.call(request, session, "payment", "GET", f"/payments/{i}")
                for i in ids[:MAX_PAYMENTS]
            )
        )
        found = [a.json() for a in answers if a.status_code == 200]
    else:
        newest = await up.call(
            request, session, "payment", "GET", "/payments", params={"limit": 100}
        )
        if newest.status_code != 200:
            return [], "payment-service did not answer"
        found = list(newest.json().get("items", []))
    if status:
        found = [p for p in found if p.get("status") == status]
    return found[:MAX_PAYMENTS], None


def _only(status: str | None) -> dict[str, str]:
    return {"status": status} if status else {}


MAX_OWNERS = 5
MAX_PAYMENTS = 50
PAYMENT_STATUSES = [s.value for s in PaymentStatus if s.value != "pending"]


@router.get("/payments")
async def payments_page(
    request: Request,
    session: OperatorSession,
    up: UpstreamDep,
    q: Annotated[str, Query(max_length=320)] = "",
    status: Annotated[str | None, Query(pattern="^[a-z_]{0,32}$")] = None,
    notice: str | None = None,
) -> Response:
    payments, error = await search_payments(request, session, up, q=q.strip(), status=status)
    return render(
        request,
        "console/payments.html.j2",
        session=session,
        payments=payments,
        q=q,
        status=status or "",
        statuses=PAYMENT_STATUSES,
        notice=notice,
        error=error,
    )


@router.post("/payments/{payment_id}/{action}")
async def payment_action(
    request: Request,
    payment_id: uuid.UUID,
    action: Annotated[str, Path(pattern=PAYMENT_ACTIONS)],
    session: OperatorSession,
    up: UpstreamDep,
    csrf_token: Csrf = None,
    amount: Annotated[int | None, Form(gt=0)] = None,
) -> Response:
    check_csrf(session, csrf_token)
    notice = await act_on_payment(
        request, session, up, payment_id=payment_id, action=action, amount=amount
    )
    return redirect(request, "/payments?" + urlencode({"q": str(payment_id), "notice": notice}))


AUDIT_FILTERS = ("actor", "action", "entity_type", "entity_id")


@router.get("/audit")
async def audit_page(
    request: Request,
    session: OperatorSession,
    up: UpstreamDep,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=200)] = None,
    entity_type: Annotated[str | None, Query(max_length=100)] = None,
    entity_id: Annotated[str | None, Query(max_length=200)] = None,
    verification: dict[str, Any] | None = None,
) -> Response:
    filters = {
        k: v
        for k, v in zip(AUDIT_FILTERS, (actor, action, entity_type, entity_id), strict=True)
        if v
    }
    answer = await up.call(
        request, session, "audit", "GET", AUDIT_EVENTS_PATH, params={**filters, "limit": 50}
    )
    try:
        records = parse_answer("audit", answer, AuditRecordPage).items
    except UpstreamError:
        records = None  # the page says so instead of failing
    return render(
        request,
        "console/audit.html.j2",
        session=session,
        records=records or [],
        filters=filters,
        verification=verification,
        error=None if records is not None else "audit-service did not answer",
    )


@router.get("/audit/verify")
async def audit_verify(request: Request, session: OperatorSession, up: UpstreamDep) -> Response:
    """Walk the hash chain now (read-only, so a GET: no CSRF token needed) and show the verdict."""
    answer = await up.call(request, session, "audit", "GET", AUDIT_VERIFY_PATH)
    try:
        verdict: dict[str, Any] = parse_answer("audit", answer, VerifyRead).model_dump()
    except UpstreamError:
        verdict = {"ok": None, "reason": f"audit-service answered {answer.status_code}"}
    return await audit_page(request, session, up, verification=verdict)


@router.get("/config")
async def config_page(request: Request, session: OperatorSession, db: SessionDep) -> Response:
    current = {row.key: row for row in await config_store.latest_of_each(db)}
    keys = [
        {"key": key, "version": current[key].version if key in current else 0}
        for key in sorted(CONFIG_KEYS)
    ]
    return render(request, "console/config.html.j2", session=session, keys=keys)


@router.get("/config/{key}")
async def config_key_page(
    request: Request,
    key: str,
    session: OperatorSession,
    db: SessionDep,
    notice: str | None = None,
    error: str | None = None,
    draft: str | None = None,
) -> Response:
    config_domain.known_key(key)
    row = await config_store.current(db, key)
    value = row.value if row else config_domain.default_value(key)
    history = await config_store.history(db, key, limit=20, before=None)
    return render(
        request,
        "console/config_key.html.j2",
        session=session,
        key=key,
        version=row.version if row else 0,
        value_json=draft or json.dumps(value, indent=2),
        schema_json=json.dumps(config_domain.schema_of(key), indent=2),
        history=history,
        notice=notice,
        error=error,
    )


@router.post("/config/{key}")
async def config_save(
    request: Request,
    key: str,
    session: OperatorSession,
    db: SessionDep,
    value: Annotated[str, Form(max_length=100_000)],
    csrf_token: Csrf = None,
    reason: Annotated[str | None, Form(max_length=500)] = None,
) -> Response:
    check_csrf(session, csrf_token)
    try:
        parsed = json.loads(value)
        saved = await config_domain.set_value(
            session=db,
            key=key,
            value=parsed,
            actor=Actor.of(request, session.principal),
            reason=reason or None,
        )
    except (ValueError, ConfigInvalid, ValidationError) as exc:
        # nothing was written: validation runs before the version row
        detail = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
            for e in getattr(exc, "extra", {}).get("errors", [])
        ) or str(exc)
        return await config_key_page(
            request, key, session, db, error=f"Not saved: {detail}", draft=value
        )
    return redirect(request, f"/config/{key}?notice=Saved as version {saved.version}.")


@router.post("/config/{key}/rollback")
async def config_rollback(
    request: Request,
    key: str,
    session: OperatorSession,
    db: SessionDep,
    version: Annotated[int, Form(ge=1)],
    csrf_token: Csrf = None,
) -> Response:
    check_csrf(session, csrf_token)
    saved = await config_domain.roll_back(
        session=db,
        key=key,
        to_version=version,
        actor=Actor.of(request, session.principal),
        reason=None,
    )
    return redirect(
        request,
        f"/config/{key}?notice=Rolled back to version {version} (now version {saved.version}).",
    )


@router.get("/dead-letters")
async def dead_letters_page(
    request: Request, session: OperatorSession, up: UpstreamDep, notice: str | None = None
) -> Response:
    answer = await up.call(request, session, "notification", "GET", DEAD_LETTERS_PATH)
    try:
        items: list[DeadLetterRead] | None = parse_answer(
            "notification", answer, DeadLetterPage
        ).items
    except UpstreamError:
        items = None
    return render(
        request,
        "console/dead_letters.html.j2",
        session=session,
        items=items or [],
        notice=notice,
        error=None if items is not None else "notification-service did not answer",
    )


@router.post("/dead-letters/{notification_id}/replay")
async def replay_dead_letter(
    request: Request,
    notification_id: uuid.UUID,
    session: OperatorSession,
    up: UpstreamDep,
    csrf_token: Csrf = None,
) -> Response:
    check_csrf(session, csrf_token)
    answer = await up.call(
        request,
        session,
        "notification",
        "POST",
        f"{DEAD_LETTERS_PATH}/{notification_id}/replay",
    )
    notice = "Replayed." if answer.status_code < 300 else f"Not replayed ({answer.status_code})."
    return redirect(request, f"/dead-letters?notice={notice}")


@router.get("/health")
async def health_page(request: Request, session: OperatorSession) -> Response:
    health: SuiteHealth = request.app.state.suite_health
    return render(
        request, "console/health.html.j2", session=session, health=await health.snapshot()
    )


@router.get("/health.json")
async def health_json(request: Request, session: OperatorSession) -> Response:
    health: SuiteHealth = request.app.state.suite_health
    return JSONResponse(await health.snapshot(), headers=SECURITY_HEADERS)
