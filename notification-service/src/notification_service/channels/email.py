"""Email over SMTP (aiosmtplib): builds the multipart message and hands it to the server."""

from __future__ import annotations

import re
import uuid
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

import aiosmtplib

from notification_service.domain.rendering import RenderedEmail
from notification_service.settings import Settings


class PermanentDeliveryError(Exception):
    """The server refused for good (5xx): more attempts would get the same answer."""


class DeliveryError(Exception):
    """The server was unreachable or answered with a temporary failure."""


# Controls and line/paragraph separators: in a header they would end it (or be refused by the
# email package, making the message unsendable). Stored values from before the text types
# refused them must still produce a sendable message.
_HEADER_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def header_text(value: str) -> str:
    """A user value made safe for one header: every control run becomes one space."""
    return " ".join(_HEADER_UNSAFE.sub(" ", value).split())


def message_id_for(notification_id: uuid.UUID, from_address: str) -> str:
    """A Message-ID derived from the notification id: a resend carries the same one."""
    _, address = parseaddr(from_address)
    domain = address.rpartition("@")[2] or "paygate.local"
    return f"<notification-{notification_id}@{domain}>"


def build_message(
    *,
    notification_id: uuid.UUID,
    from_address: str,
    to_address: str,
    to_name: str | None,
    email: RenderedEmail,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = from_address
    # The display name is encoded by headerregistry (RFC 2047, quoting), never concatenated.
    msg["To"] = Address(display_name=header_text(to_name or ""), addr_spec=to_address)
    msg["Subject"] = header_text(email.subject)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = message_id_for(notification_id, from_address)
    msg["X-Paygate-Notification-Id"] = str(notification_id)
    msg.set_content(email.text)
    msg.add_alternative(email.html, subtype="html")
    return msg


class SmtpMailer:
    """Sends one message per connection; plain SMTP locally, STARTTLS and login in production."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send(self, message: EmailMessage) -> None:
        s = self.settings
        try:
            await aiosmtplib.send(
                message,
                hostname=s.smtp_host,
                port=s.smtp_port,
                start_tls=s.smtp_starttls,
                username=s.smtp_username or None,
                password=s.smtp_password.get_secret_value() if s.smtp_password else None,
                timeout=s.smtp_timeout_seconds,
                local_hostname=s.smtp_local_hostname,
            )
        except aiosmtplib.SMTPResponseException as exc:
            reason = f"SMTP {exc.code}: {exc.message}"
            if 500 <= exc.code < 600:
                raise PermanentDeliveryError(reason) from None
            raise DeliveryError(reason) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
