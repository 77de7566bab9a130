"""Jinja rendering for the pages, their security headers, and the page-shaped error answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.templating import Jinja2Templates
from starlette.responses import HTMLResponse, RedirectResponse, Response

from admin_service.pages.session import CsrfInvalid, PageForbidden, SignInRequired, base_path

HERE = Path(__file__).resolve().parent.parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
# Our templates are `*.html.j2`, which Jinja's default (autoescape by `.html` suffix) leaves
# unescaped: every value a user typed (names, emails, descriptions) would be raw HTML.
templates.env.autoescape = True

# Only our own origin: no CDN, no inline script, no framing (clickjacking), forms post home.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def surface_of(request: Request) -> tuple[str, str]:
    """("console", "/admin") or ("dashboard", "/dashboard"): which surface, and its base path."""
    if request.url.path.startswith("/dashboard"):
        return "dashboard", base_path(request, "/dashboard")
    return "console", base_path(request, "/console")


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    surface, base = surface_of(request)
    response = templates.TemplateResponse(
        request,
        template,
        {"base": base, "surface": surface, **context},
        status_code=status_code,
    )
    response.headers.update(SECURITY_HEADERS)
    return response


def redirect(request: Request, to: str) -> RedirectResponse:
    """303 to a page of the same surface (`to` is relative to its base: "/users")."""
    _, base = surface_of(request)
    return RedirectResponse(base + to, status_code=303, headers=SECURITY_HEADERS)


def install_page_errors(app: FastAPI) -> None:
    async def sign_in(request: Request, exc: Exception) -> Response:
        return redirect(request, "/login")

    async def forbidden(request: Request, exc: Exception) -> Response:
        return render(request, "forbidden.html.j2", status_code=403, message=str(exc))

    app.add_exception_handler(SignInRequired, sign_in)
    app.add_exception_handler(PageForbidden, forbidden)
    app.add_exception_handler(CsrfInvalid, forbidden)
