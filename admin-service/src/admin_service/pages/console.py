"""The operator console (`/admin/…` at the gateway): overview, users, configuration, dead letters, health."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from pydantic import ValidationError
from starlette.responses import JSONResponse, Response

from admin_service.api.operations import operator_headers
from admin_service.domain import config as config_domain
from admin_service.domain.errors import ConfigInvalid
from admin_service.domain.health import SuiteHealth
from admin_service.pages.rendering import SECURITY_HEADERS, redirect, render
from admin_service.pages.session import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    AnySession,
    OperatorSession,
    check_csrf,
    new_login_csrf,
    set_cookie,
)
from admin_service.pages.upstream import Upstream, upstream
from admin_service.store import config as config_store
from paygate_common.audit import Actor
from paygate_common.config import CONFIG_KEYS
from paygate_common.db import SessionDep

UpstreamDep = Annotated[Upstream, Depends(upstream)]
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
async def overview(request: Request, session: OperatorSession, up: UpstreamDep) -> Response:
    answer = await up.call(
        request, session, "transaction", "GET", "/transactions/summary", params={"period": "day"}
    )
    rows = answer.json().get("items", []) if answer.status_code == 200 else []
    return render(
        request,
        "console/overview.html.j2",
        session=session,
        summary=rows,
        summary_json=json.dumps(rows),
        analytics_down=answer.status_code != 200,
    )


@router.get("/users")
async def users_page(
    request: Request,
    session: OperatorSession,
    q: Annotated[str | None, Query(max_length=200)] = None,
    notice: str | None = None,
) -> Response:
    users = request.app.state.users
    params = {k: v for k, v in {"q": q, "limit": 50}.items() if v is not None}
    answer = await users.request("GET", "/internal/users", params=params)
    items = answer.json().get("items", []) if answer.status_code == 200 else []
    return render(
        request,
        "console/users.html.j2",
        session=session,
        users=items,
        q=q or "",
        notice=notice,
        error=None if answer.status_code == 200 else "user-service did not answer",
    )


@router.post("/users/{user_id}")
async def update_user(
    request: Request,
    user_id: uuid.UUID,
    session: OperatorSession,
    csrf_token: Csrf = None,
    role: Annotated[str | None, Form(pattern="^(customer|merchant|admin)$")] = None,
    disabled: Annotated[str | None, Form(pattern="^(true|false)$")] = None,
) -> Response:
    check_csrf(session, csrf_token)
    change: dict[str, Any] = {}
    if role:
        change["role"] = role
    if disabled is not None:
        change["disabled"] = disabled == "true"
    answer = await request.app.state.users.request(
        "PATCH",
        f"/internal/users/{user_id}",
        json=change,
        headers=operator_headers(request, session.principal.user_id),
    )
    notice = (
        "Saved."
        if answer.status_code == 200
        else f"Not saved: {_problem(answer).get('detail', answer.status_code)}"
    )
    return redirect(request, f"/users?notice={notice}")


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
    answer = await up.call(
        request, session, "notification", "GET", "/admin/notifications/dead-letters"
    )
    body = answer.json() if answer.status_code == 200 else {}
    items = body.get("items", body if isinstance(body, list) else [])
    return render(
        request,
        "console/dead_letters.html.j2",
        session=session,
        items=items,
        notice=notice,
        error=None if answer.status_code == 200 else "notification-service did not answer",
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
        f"/admin/notifications/dead-letters/{notification_id}/replay",
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
