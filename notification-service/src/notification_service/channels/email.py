"""Email over SMTP (aiosmtplib): builds the multipart message and hands it to the server."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from dataclasses import dataclass, field
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


@dataclass
class _Connection:
    smtp: aiosmtplib.SMTP
    id: int
    sent: int = 0
    idle_since: float = field(default_factory=time.monotonic)


class SmtpMailer:
    """A small pool of kept-open SMTP connections; plain SMTP locally, STARTTLS and login in
    production.

    A message takes an idle connection (or opens one, at most `smtp_pool_size` at a time) and
    gives it back after the server's answer. A connection idle for longer than
    `smtp_idle_seconds` or that carried `smtp_messages_per_connection` messages is closed
    instead (servers drop idle clients; some cap messages per session). A reused connection
    that the server closed meanwhile is replaced once, at once: that is not the message's
    fault. Any other failure closes the connection (or resets it after a refused
    transaction) and reaches the caller as `DeliveryError`/`PermanentDeliveryError`, which
    the sender turns into its retry schedule.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(settings.smtp_pool_size)
        self._opened = 0
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def connections_opened(self) -> int:
        """How many connections this mailer has opened so far (each costs a TCP/EHLO/TLS setup)."""
        return self._opened

    async def send(self, message: EmailMessage) -> None:
        async with self._slots:
            connection, reused = await self._take()
            try:
                try:
                    await connection.smtp.send_message(message)
                except ConnectionError:  # aiosmtplib's SMTPServerDisconnected is one
                    if not reused:
                        raise
                    # The server dropped the kept-open connection meanwhile: a fresh one, once.
                    self._discard(connection)
                    connection = await self._open()
                    await connection.smtp.send_message(message)
            except aiosmtplib.SMTPResponseException as exc:
                await self._after_refusal(connection)
                reason = f"SMTP {exc.code}: {exc.message}"
                if 500 <= exc.code < 600:
                    raise PermanentDeliveryError(reason) from None
                raise DeliveryError(reason) from None
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                self._discard(connection)
                raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
            except BaseException:
                self._discard(connection)
                raise
            connection.sent += 1
            self._give_back(connection)

    async def aclose(self) -> None:
        """QUIT every idle connection (at shutdown)."""
        idle, self._idle = self._idle, []
        for connection in idle:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.smtp.quit(), 2)
            connection.smtp.close()

    async def _take(self) -> tuple[_Connection, bool]:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()  # the most recently used: the least likely dropped
            if connection.smtp.is_connected and (
                now - connection.idle_since < self.settings.smtp_idle_seconds
            ):
                return connection, True
            self._discard(connection)
        return await self._open(), False

    async def _open(self) -> _Connection:
        s = self.settings
        smtp = aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            start_tls=s.smtp_starttls,
            username=s.smtp_username or None,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            timeout=s.smtp_timeout_seconds,
            local_hostname=s.smtp_local_hostname,
        )
        try:
            await smtp.connect()
        except aiosmtplib.SMTPResponseException as exc:
            smtp.close()
            raise DeliveryError(f"SMTP {exc.code}: {exc.message}") from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            smtp.close()
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
        self._opened += 1
        return _Connection(smtp, self._opened)

    async def _after_refusal(self, connection: _Connection) -> None:
        """The server refused this message, not the session: RSET and keep the connection."""
        try:
            await connection.smtp.rset()
        except Exception:
            self._discard(connection)
            return
        self._give_back(connection)

    def _give_back(self, connection: _Connection) -> None:
        if (
            connection.sent >= self.settings.smtp_messages_per_connection
            or not connection.smtp.is_connected
        ):
            self._retire(connection)
            return
        connection.idle_since = time.monotonic()
        self._idle.append(connection)

    def _retire(self, connection: _Connection) -> None:
        """A polite QUIT in the background; the message was already accepted."""
        task = asyncio.create_task(self._quit(connection))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _quit(self, connection: _Connection) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connection.smtp.quit(), 2)
        connection.smtp.close()

    def _discard(self, connection: _Connection) -> None:
        connection.smtp.close()
