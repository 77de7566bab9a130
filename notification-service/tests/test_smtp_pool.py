"""The mailer keeps SMTP connections open: many messages over one, a fresh one after the server
went away, honest errors while it is away. Against the real SMTP sink (aiosmtpd)."""

from __future__ import annotations

import asyncio
import uuid
from email.message import EmailMessage
from typing import Any

import pytest

from notification_service.channels.email import DeliveryError, SmtpMailer, build_message
from notification_service.domain.rendering import RenderedEmail
from notification_service.settings import Settings
from paygate_devstack.events_testing import wait_for

pytestmark = pytest.mark.timeout(60)


def message(to: str, i: int) -> EmailMessage:
    return build_message(
        notification_id=uuid.uuid4(),
        from_address="paygate <no-reply@paygate.test>",
        to_address=to,
        to_name=None,
        email=RenderedEmail(subject=f"message {i}", text=f"text {i}", html=f"<p>{i}</p>"),
    )


def connections_to(smtp_sink: Any, to: str) -> list[str]:
    """The sink's connection id of every message stored for `to`, oldest first."""
    return [str(m["X-Sink-Connection"]) for m in smtp_sink.messages() if m["To"] == to]


async def test_many_messages_go_over_one_kept_open_connection(
    settings: Settings, smtp_sink: Any
) -> None:
    to = f"pool-{uuid.uuid4().hex[:8]}@example.com"
    mailer = SmtpMailer(settings)
    try:
        for i in range(10):
            await mailer.send(message(to, i))
        # Four at a time (the sender's parallelism): at most one connection each.
        await asyncio.gather(*(mailer.send(message(to, 10 + i)) for i in range(8)))
    finally:
        await mailer.aclose()
    carried = connections_to(smtp_sink, to)
    assert len(carried) == 18
    assert len(set(carried[:10])) == 1  # one after the other: always the same connection
    assert len(set(carried)) <= settings.smtp_pool_size
    assert mailer.connections_opened == len(set(carried))


async def test_a_restarted_server_costs_a_new_connection_and_an_outage_is_an_error(
    settings: Settings, smtp_sink: Any
) -> None:
    to = f"restart-{uuid.uuid4().hex[:8]}@example.com"
    mailer = SmtpMailer(settings)
    try:
        await mailer.send(message(to, 0))
        smtp_sink.stop()
        try:
            # The kept-open connection is dead and nothing answers: the caller's retry path.
            with pytest.raises(DeliveryError):
                await mailer.send(message(to, 1))
        finally:
            smtp_sink.start()
        await mailer.send(message(to, 2))  # the sink is back: sent without being told
        smtp_sink.stop()
        smtp_sink.start()
        await mailer.send(message(to, 3))  # dropped while idle: replaced at once, no error
        await mailer.send(message(to, 4))
    finally:
        await mailer.aclose()
    await wait_for(lambda: len(connections_to(smtp_sink, to)) == 4)
    subjects = [m["Subject"] for m in smtp_sink.messages() if m["To"] == to]
    assert subjects == ["message 0", "message 2", "message 3", "message 4"]
    first, second, third, fourth = connections_to(smtp_sink, to)
    assert len({first, second, third}) == 3  # a new connection after each restart
    assert fourth == third  # and that one is kept again
