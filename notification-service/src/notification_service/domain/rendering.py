"""Email content per payment event type: subject line, plain-text and HTML bodies (Jinja2)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from paygate_common.events import PaymentEvent
from paygate_common.logging import mask
from paygate_common.money import CURRENCY_EXPONENTS, Money

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"

# The payment events a customer is told about; every other payment.* event is ignored.
NOTIFIED_EVENT_TYPES = frozenset(
    {"payment.succeeded", "payment.failed", "payment.requires_action", "payment.refunded"}
)

_SUBJECTS = {
    "payment.succeeded": "Payment received: {amount}",
    "payment.failed": "Your payment of {amount} did not go through",
    "payment.requires_action": "Action needed to complete your payment of {amount}",
    "payment.refunded": "Refund of {amount} is on its way",
}

# Shown when the provider gave no message; never the raw provider error.
GENERIC_FAILURE_MESSAGE = "Your payment was declined. No money was taken."
_MAX_FAILURE_MESSAGE = 300
_SAFE_URL = re.compile(r"^https?://[^\s<>\"']+$")


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def format_amount(amount: int, currency: str) -> str:
    """`1999, "usd"` → `"19.99 USD"`: minor units shown with the currency's own exponent."""
    try:
        return Money(amount=amount, currency=currency).format()
    except ValueError:
        # A refund event may carry 0, or a currency we do not list: still say something exact.
        exp = CURRENCY_EXPONENTS.get(currency.lower(), 2)
        major = amount / 10**exp if exp else amount
        return f"{major:,.{exp}f} {currency.upper()}"


def subject_for(event_type: str, payment: PaymentEvent) -> str:
    return _SUBJECTS[event_type].format(amount=format_amount(payment.amount, payment.currency))


def safe_failure_message(payment: PaymentEvent) -> str:
    """The provider's customer-facing message, masked and bounded, or a generic one."""
    message = (payment.failure_message or "").strip()
    if not message:
        return GENERIC_FAILURE_MESSAGE
    return mask(message)[:_MAX_FAILURE_MESSAGE]


def next_action_url(payment: PaymentEvent) -> str | None:
    """The URL where the customer finishes authentication, if the provider gave a usable one."""
    action = payment.next_action or {}
    candidates: list[Any] = [action.get("url"), action.get("redirect_url")]
    redirect = action.get("redirect_to_url")
    if isinstance(redirect, dict):
        candidates.append(redirect.get("url"))
    for url in candidates:
        if isinstance(url, str) and _SAFE_URL.match(url):
            return url
    return None


@lru_cache(maxsize=1)
def _environment() -> Environment:
    # Autoescape the HTML bodies only: a failure message or a name must never become markup.
    return Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_email(
    event_type: str, payment: PaymentEvent, *, recipient_name: str | None
) -> RenderedEmail:
    """Subject and both bodies for one payment event addressed to one person."""
    context = {
        "name": (recipient_name or "").strip() or "there",
        "amount": format_amount(payment.amount, payment.currency),
        "order_id": str(payment.order_id),
        "payment_id": str(payment.payment_id),
        "failure_message": safe_failure_message(payment),
        "action_url": next_action_url(payment),
    }
    env = _environment()
    return RenderedEmail(
        subject=subject_for(event_type, payment),
        text=env.get_template(f"{event_type}.txt.j2").render(context),
        html=env.get_template(f"{event_type}.html.j2").render(context),
    )
