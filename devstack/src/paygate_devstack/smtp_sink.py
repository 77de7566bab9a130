"""SMTP sink: accepts every message and keeps it as an .eml file (run as a module or in-process).

python -m paygate_devstack.smtp_sink --port 51025 --maildir .paygate/mail
"""

from __future__ import annotations

import argparse
import email
import email.policy
import os
import signal
import threading
import time
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

CONNECTION_HEADER = "X-Sink-Connection"


class MaildirHandler:
    """aiosmtpd handler writing each message atomically to `<maildir>/<time_ns>-<id>.eml`."""

    def __init__(self, maildir: Path) -> None:
        self.maildir = maildir
        self.maildir.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content: bytes = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode()
        # Which SMTP connection carried the message: tests of connection reuse read it back.
        connection = getattr(session, "sink_connection", None)
        if connection is None:
            connection = session.sink_connection = uuid.uuid4().hex[:12]
        headers = (
            f"{CONNECTION_HEADER}: {connection}\r\n"
            f"X-Envelope-From: {envelope.mail_from}\r\n"
            f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.eml"
        tmp = self.maildir / f".{name}.tmp"
        tmp.write_bytes(headers + content)
        os.replace(tmp, self.maildir / name)
        return "250 Message accepted for delivery"


def read_messages(maildir: Path) -> list[EmailMessage]:
    """Every message in `maildir`, oldest first, parsed with the modern email policy."""
    if not maildir.exists():
        return []
    messages: list[EmailMessage] = []
    for path in sorted(maildir.glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        messages.append(msg)
    return messages


def message_body(msg: EmailMessage) -> str:
    """The plain-text body (or the HTML one when there is no plain part)."""
    part = msg.get_body(preferencelist=("plain", "html"))
    return part.get_content() if part is not None else ""


class SmtpSink:
    """In-process SMTP sink on a fixed port; `stop()` then `start()` simulates an SMTP outage."""

    def __init__(self, maildir: Path, *, host: str = "127.0.0.1", port: int) -> None:
        self.host = host
        self.port = port
        self.maildir = Path(maildir)
        self._controller: Controller | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> None:
        with self._lock:
            if self._controller is not None:
                return
            controller = Controller(
                MaildirHandler(self.maildir),
                hostname=self.host,
                port=self.port,
                enable_SMTPUTF8=True,
                data_size_limit=0,
            )
            deadline = time.monotonic() + 10
            while True:  # the port may linger for a moment after stop()
                try:
                    controller.start()
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            self._controller = controller

    def stop(self) -> None:
        with self._lock:
            if self._controller is not None:
                self._controller.stop()
                self._controller = None

    def messages(self) -> list[EmailMessage]:
        return read_messages(self.maildir)

    def connections(self) -> list[str]:
        """The SMTP connection of each stored message, oldest first (one id per session)."""
        return [str(msg[CONNECTION_HEADER]) for msg in self.messages()]

    def clear(self) -> None:
        for path in self.maildir.glob("*.eml"):
            path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m paygate_devstack.smtp_sink")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--maildir", type=Path, required=True)
    args = parser.parse_args(argv)
    sink = SmtpSink(args.maildir, host=args.host, port=args.port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    sink.start()
    print(f"SMTP sink on {args.host}:{args.port}, messages in {args.maildir}", flush=True)
    try:
        while not stop.wait(1):
            pass
    finally:
        sink.stop()


if __name__ == "__main__":
    main()
