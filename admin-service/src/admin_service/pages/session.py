"""Browser sessions: the API's own JWT in an HttpOnly SameSite cookie, and CSRF tokens for forms."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.responses import Response

from paygate_common.auth import Principal, verify_access_token
from paygate_common.auth.dependencies import jwks_for
from paygate_common.errors import PaygateError

SESSION_COOKIE = "paygate_session"
LOGIN_CSRF_COOKIE = "paygate_login_csrf"


class SignInRequired(PaygateError):
    """Rendered as a redirect to the sign-in page (see `pages.errors`)."""

    status_code, code, title = 401, "sign_in_required", "Please sign in"


class PageForbidden(PaygateError):
    status_code, code, title = 403, "admin_required", "This page is for operators"


class CsrfInvalid(PaygateError):
    status_code, code, title = 403, "csrf_invalid", "The form has expired; reload the page"


@dataclass(frozen=True)
class PageSession:
    """Who is looking at the page, the token their calls carry, and their forms' CSRF token."""

    principal: Principal
    token: str
    csrf: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def base_path(request: Request, default: str) -> str:
    """Where the pages live for the browser: the gateway says (`/admin`), else our own path."""
    prefix = request.headers.get("x-forwarded-prefix", "")
    return prefix.rstrip("/") if prefix.startswith("/") else default


def csrf_for(secret: str, token: str) -> str:
    """Bound to the session: a form from one session is worthless in another."""
    return hmac.new(secret.encode(), token.encode(), hashlib.sha256).hexdigest()[:40]


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    settings = request.app.state.settings
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=settings.environment == "production",
        path="/",
    )


async def page_session(request: Request) -> PageSession:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise SignInRequired()
    settings = request.app.state.settings
    try:
        principal = await verify_access_token(
            token,
            jwks=jwks_for(request),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
    except PaygateError:
        raise SignInRequired("Your session has ended; sign in again") from None
    return PageSession(principal, token, csrf_for(settings.csrf_secret.get_secret_value(), token))


async def operator_session(session: Annotated[PageSession, Depends(page_session)]) -> PageSession:
    if not session.principal.is_admin:
        raise PageForbidden("Only operators (role admin) can open the console")
    return session


def check_csrf(session: PageSession, submitted: str | None) -> None:
    if not submitted or not hmac.compare_digest(submitted, session.csrf):
        raise CsrfInvalid()


AnySession = Annotated[PageSession, Depends(page_session)]
OperatorSession = Annotated[PageSession, Depends(operator_session)]
