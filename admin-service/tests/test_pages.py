"""The pages' guards, without a browser: sign-in redirects, CSRF on every form, security headers."""

from __future__ import annotations

import uuid

import httpx
from fastapi import FastAPI

from admin_service.pages.session import SESSION_COOKIE, csrf_for
from paygate_devstack.testkit import TokenMint


async def test_pages_redirect_to_their_own_sign_in_page(
    admin: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = admin
    for surface in ("console", "dashboard"):
        r = await client.get(f"/{surface}/")
        assert r.status_code == 303 and r.headers["location"] == f"/{surface}/login"
        # behind the gateway the browser sees the gateway's prefix
        r = await client.get(f"/{surface}/", headers={"X-Forwarded-Prefix": "/admin"})
        assert r.headers["location"] == "/admin/login"
        login = await client.get(f"/{surface}/login")
        assert login.status_code == 200
        csp = login.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert 'name="csrf_token"' in login.text


async def test_a_form_without_its_sessions_csrf_token_is_refused(
    admin: tuple[FastAPI, httpx.AsyncClient], token_mint: TokenMint
) -> None:
    _, client = admin
    client.cookies.set(SESSION_COOKIE, token_mint.token(role="admin"))
    try:
        for path, form in (
            ("/console/config/fees", {"value": "{}"}),
            (f"/console/users/{uuid.uuid4()}", {"disabled": "true"}),
            ("/dashboard/api-keys", {"name": "ci"}),
            (f"/dashboard/webhooks/{uuid.uuid4()}/retry", {}),
            ("/console/logout", {}),
        ):
            for token in (None, "forged"):
                data = {**form, **({"csrf_token": token} if token else {})}
                r = await client.post(path, data=data)
                assert r.status_code == 403, (path, token, r.text)
                assert "expired" in r.text
        # a valid token of another session is worthless in this one
        app, _ = admin
        secret = app.state.settings.csrf_secret.get_secret_value()
        other_sessions = csrf_for(secret, token_mint.token(role="admin"))
        r = await client.post(
            "/console/config/fees", data={"value": "{}", "csrf_token": other_sessions}
        )
        assert r.status_code == 403
    finally:
        client.cookies.clear()


async def test_the_login_form_needs_its_own_csrf_cookie(
    admin: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = admin
    r = await client.post(
        "/console/login", data={"email": "a@example.com", "password": "x", "csrf_token": "made-up"}
    )
    assert r.status_code == 403 and "expired" in r.text


def test_every_page_template_escapes_what_users_typed() -> None:
    # `*.html.j2` is not `.html`: Jinja's suffix rule would render names and emails as raw HTML.
    from admin_service.pages.rendering import templates

    env = templates.env
    names = [n for n in env.list_templates() if n.endswith(".j2")]
    assert len(names) >= 10
    for name in names:
        escapes = env.autoescape(name) if callable(env.autoescape) else env.autoescape
        assert escapes, name
    page = env.from_string("{{ v }}").render(v="<script>alert(1)</script>")
    assert "<script>" not in page
