"""Email content and delivery rules that need no infrastructure: amounts, escaping, config."""

from __future__ import annotations

import uuid

import pytest

from notification_service.channels.email import build_message, message_id_for
from notification_service.domain.rendering import (
    GENERIC_FAILURE_MESSAGE,
    format_amount,
    render_email,
)
from notification_service.settings import Settings
from paygate_common.events import PaymentEvent


def payment(status: str, **fields: object) -> PaymentEvent:
    base: dict[str, object] = {
        "payment_id": uuid.uuid4(),
        "order_id": uuid.uuid4(),
        "user_id": uuid.uuid4(),
        "status": status,
        "amount": 1999,
        "currency": "usd",
        "provider": "stripe",
    }
    return PaymentEvent.model_validate(base | fields)


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        (1999, "usd", "19.99 USD"),
        (123456, "eur", "1,234.56 EUR"),
        (500, "jpy", "500 JPY"),
        (1500, "kwd", "1.500 KWD"),
        (0, "usd", "0.00 USD"),  # outside Money's range, still exact
    ],
)
def test_amounts_are_formatted_from_minor_units(amount: int, currency: str, shown: str) -> None:
    assert format_amount(amount, currency) == shown


@pytest.mark.parametrize(
    "event_type",
    ["payment.succeeded", "payment.failed", "payment.requires_action", "payment.refunded"],
)
def test_every_notified_type_renders_a_subject_text_and_html(event_type: str) -> None:
    event = payment(event_type.removeprefix("payment."))
    email = render_email(event_type, event, recipient_name="Grace")
    assert "19.99 USD" in email.subject
    for body in (email.text, email.html):
        assert "19.99 USD" in body and str(event.order_id) in body and "Grace" in body
    assert email.html.lstrip().startswith("<!doctype html>")


def test_a_failure_without_a_provider_message_gets_a_generic_one() -> None:
    email = render_email("payment.failed", payment("failed"), recipient_name=None)
    assert GENERIC_FAILURE_MESSAGE in email.text
    assert "Hi there" in email.text


def test_requires_action_ignores_a_next_action_url_that_is_not_http() -> None:
    event = payment("requires_action", next_action={"url": "javascript:alert(1)"})
    email = render_email("payment.requires_action", event, recipient_name=None)
    assert "javascript:" not in email.text + email.html
    assert "Open your order in the app" in email.text


def test_message_id_is_derived_from_the_notification_id() -> None:
    notification_id = uuid.uuid4()
    email = render_email("payment.succeeded", payment("succeeded"), recipient_name="Ann")
    message = build_message(
        notification_id=notification_id,
        from_address="paygate <no-reply@pay.example>",
        to_address="ann@example.com",
        to_name="Ann",
        email=email,
    )
    assert message["Message-ID"] == f"<notification-{notification_id}@pay.example>"
    assert message["Message-ID"] == message_id_for(notification_id, "no-reply@pay.example")
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]


def test_smtp_settings_fall_back_to_the_unprefixed_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SMTP_HOST", "mail.internal")
    monkeypatch.setenv("SMTP_PORT", "2525")
    monkeypatch.setenv("NOTIFICATION_SERVICE_SMTP_PASSWORD", "s3cret")
    monkeypatch.setenv("NOTIFICATION_SERVICE_MAX_ATTEMPTS", "7")
    settings = Settings()
    assert (settings.smtp_host, settings.smtp_port, settings.max_attempts) == (
        "mail.internal",
        2525,
        7,
    )
    assert settings.smtp_password is not None
    assert "s3cret" not in repr(settings)
    monkeypatch.setenv("NOTIFICATION_SERVICE_SMTP_PORT", "587")
    assert Settings().smtp_port == 587


@pytest.mark.parametrize(
    "name",
    [
        "Eve\r\nBcc: x@example.com",
        "Zoë 李 🎉👩🏽‍💻",
        'Ann "The Payer", <ann>',
        "tab\tand\u2028ls\x00",
    ],
)
def test_no_recipient_name_makes_a_message_unsendable(name: str) -> None:
    email = render_email("payment.succeeded", payment("succeeded"), recipient_name=name)
    message = build_message(
        notification_id=uuid.uuid4(),
        from_address="paygate <no-reply@pay.example>",
        to_address="eve@example.com",
        to_name=name,
        email=email,
    )
    raw = message.as_bytes()  # what aiosmtplib sends; raises for an unsendable message
    head = raw.split(b"\n\n", 1)[0]
    assert b"\nBcc:" not in head and not head.startswith(b"Bcc:")
    assert message["To"].addresses[0].addr_spec == "eve@example.com"
    assert len(message["To"].addresses) == 1


def test_a_lease_shorter_than_a_send_is_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="webhook_lease_seconds"):
        Settings(webhook_timeout_seconds=15, webhook_lease_seconds=10)
    with pytest.raises(ValidationError, match="sending_lease_seconds"):
        Settings(smtp_timeout_seconds=30, sending_lease_seconds=20)
    assert Settings(webhook_timeout_seconds=3, webhook_lease_seconds=5).webhook_lease_seconds == 5


def test_production_is_strict_about_webhook_targets_unless_told_otherwise() -> None:
    # model_construct: production's own validators (no dev secrets) are not what is tested here.
    production = Settings.model_construct(environment="production")
    assert production.webhook_https_required is True
    assert production.webhook_private_targets_allowed is False
    development = Settings.model_construct(environment="development")
    assert development.webhook_https_required is False
    assert development.webhook_private_targets_allowed is True
    relaxed = Settings.model_construct(environment="production", webhook_allow_private_targets=True)
    assert relaxed.webhook_private_targets_allowed is True
