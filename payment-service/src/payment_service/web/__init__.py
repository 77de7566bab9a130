"""The hosted checkout's web side: templates, security headers (CSP) and the signed page token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import HTMLResponse

from paygate_common.errors import Forbidden
from paygate_common.money import minor_to_major
from payment_service.settings import Settings

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
BUTTON_JS_DIR = STATIC_DIR / "js"
templates = Jinja2Templates(directory=str(HERE / "templates"))
# Jinja's default escapes only `*.html`; these are `*.html.j2` and show merchant-given text.
templates.env.autoescape = True
# Where the pages live when no gateway says otherwise (X-Forwarded-Prefix).
PAGE_PREFIX = "/checkout"
TOKEN_HEADER = "X-Checkout-Token"


class PageTokenInvalid(Forbidden):
    code, title = "checkout_token_invalid", "This checkout page has expired; reload it"


def origin_of(url: str | None) -> str | None:
    """`https://shop.example.com` of a URL; None for anything that is not http(s)."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def stripe_origins(settings: Settings) -> list[str]:
    """Where Stripe.js loads from and talks to (one origin for localstripe's stand-in)."""
    found = [origin_of(settings.checkout_stripe_js_url()), origin_of(settings.stripe_api_base)]
    return list(dict.fromkeys(o for o in found if o))


def content_security_policy(settings: Settings, *, merchant_origin: str | None) -> str:
    """Only our own origin and Stripe's; framed only by the merchant the payment returns to."""
    stripe = " ".join(stripe_origins(settings))
    frames = stripe
    if origin_of(settings.checkout_stripe_js_url()) == "https://js.stripe.com":
        # Real Stripe.js runs 3-D Secure in frames of its own hooks host.
        frames += " https://hooks.stripe.com"
    ancestors = f"'self' {merchant_origin}" if merchant_origin else "'self'"
    return (
        f"default-src 'none'; script-src 'self' {stripe}; style-src 'self'; "
        f"img-src 'self' data:; connect-src 'self' {stripe}; frame-src {frames}; "
        f"frame-ancestors {ancestors}; form-action 'self'; base-uri 'none'"
    )


def security_headers(settings: Settings, *, merchant_origin: str | None) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(
            settings, merchant_origin=merchant_origin
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def base_path(request: Request) -> str:
    """The pages' path for the browser: the gateway says where (X-Forwarded-Prefix)."""
    prefix = request.headers.get("x-forwarded-prefix", "")
    return prefix.rstrip("/") if prefix.startswith("/") else PAGE_PREFIX


def render(
    request: Request,
    template: str,
    *,
    merchant_origin: str | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    response = templates.TemplateResponse(
        request,
        template,
        {"base": base_path(request), "merchant_origin": merchant_origin, **context},
        status_code=status_code,
    )
    response.headers.update(security_headers(settings, merchant_origin=merchant_origin))
    return response


def display_amount(amount: int, currency: str) -> str:
    """`12.34 USD` from minor units (the currency's own exponent: `1000 JPY`, `5.000 KWD`)."""
    return f"{minor_to_major(amount, currency)} {currency.upper()}"


# --- the page token -----------------------------------------------------------------------------
#
# Every call a checkout page makes carries this header: an HMAC over the payment id and an expiry
# under `checkout_secret`. Another site cannot read it (no CORS on our side) nor send the custom
# header cross-origin without a preflight we never grant, so it is the page's CSRF token; it is
# bound to one payment, so one page's token opens no other. Paying once is enforced by the
# payment's state (`domain.checkout.pay`), so a replayed request pays nothing twice.


def _signature(secret: str, payment_id: uuid.UUID, expires: int) -> str:
    mac = hmac.new(secret.encode(), f"checkout:{payment_id}:{expires}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def issue_page_token(settings: Settings, payment_id: uuid.UUID, *, now: float | None = None) -> str:
    expires = int((now or time.time()) + settings.checkout_ttl_seconds)
    return (
        f"{expires}.{_signature(settings.checkout_secret.get_secret_value(), payment_id, expires)}"
    )


def check_page_token(
    settings: Settings, payment_id: uuid.UUID, token: str | None, *, now: float | None = None
) -> None:
    expires_text, _, signature = (token or "").partition(".")
    if not expires_text.isdigit() or not signature:
        raise PageTokenInvalid("This request did not come from the checkout page")
    expected = _signature(
        settings.checkout_secret.get_secret_value(), payment_id, int(expires_text)
    )
    if not hmac.compare_digest(signature, expected):
        raise PageTokenInvalid("This request did not come from the checkout page")
    if int(expires_text) < (now or time.time()):
        raise PageTokenInvalid("This checkout page has expired; reload it")
