"""SMS provider stand-in (a fake of Twilio's Messages API): each accepted message becomes a JSON
file in `.paygate/sms/`.

Speaks the wire protocol notification-service's SMS channel uses against the real provider:
`POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, form fields `To`, `From`, `Body`, HTTP
basic auth with the account sid and auth token; 201 with a Message resource, or Twilio's error
shape (`{code, message, more_info, status}`) with its error codes for a bad number (21211), a
missing sender (21603), a missing or too long body (21602, 21617) and bad credentials (20003).

python -m paygate_devstack.sms_sink --port 51026 --dir .paygate/sms
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import signal
import socket
import threading
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from paygate_devstack.components import SinkProcess

DEFAULT_ACCOUNT_SID = "AC00000000000000000000000000000000"
DEFAULT_AUTH_TOKEN = "dev-only-sms-auth-token"
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
MAX_BODY = 1600


def _error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status_code=status,
    )


def build_app(directory: Path, *, account_sid: str, auth_token: str) -> Starlette:
    directory.mkdir(parents=True, exist_ok=True)

    async def create_message(request: Request) -> JSONResponse:
        sid = request.path_params["sid"]
        if not _authorised(request.headers.get("authorization", ""), account_sid, auth_token):
            return _error(401, 20003, "Authenticate")
        if sid != account_sid:
            return _error(404, 20404, f"The requested resource {request.url.path} was not found")
        form = await request.form()
        to, sender, body = (str(form.get(k) or "") for k in ("To", "From", "Body"))
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        if not E164.match(to):
            return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not sender:
            return _error(400, 21603, "A 'From' phone number is required.")
        if not body:
            return _error(400, 21602, "Message body is required.")
        if len(body) > MAX_BODY:
            return _error(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )
        message_sid = "SM" + secrets.token_hex(16)
        now = format_datetime(datetime.now(UTC), usegmt=True)
        resource: dict[str, Any] = {
            "sid": message_sid,
            "account_sid": account_sid,
            "to": to,
            "from": sender,
            "body": body,
            "status": "queued",
            "direction": "outbound-api",
            "num_segments": str(max(1, -(-len(body) // 153))),
            "date_created": now,
            "date_updated": now,
            "date_sent": None,
            "price": None,
            "error_code": None,
            "error_message": None,
            "api_version": "2010-04-01",
            "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{message_sid}.json",
        }
        name = f"{time.time_ns()}-{message_sid}.json"
        tmp = directory / f".{name}.tmp"
        tmp.write_text(json.dumps(resource, indent=2))
        os.replace(tmp, directory / name)
        return JSONResponse(resource, status_code=201)

    return Starlette(
        routes=[Route("/2010-04-01/Accounts/{sid}/Messages.json", create_message, methods=["POST"])]
    )


def _authorised(header: str, account_sid: str, auth_token: str) -> bool:
    if not header.lower().startswith("basic "):
        return False
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    return secrets.compare_digest(user, account_sid) and secrets.compare_digest(
        password, auth_token
    )


def read_messages(directory: Path) -> list[dict[str, Any]]:
    """Every message the sink accepted, oldest first."""
    if not directory.exists():
        return []
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


class ThreadedServer:
    """An ASGI app under uvicorn in a background thread on a fixed port (for session fixtures)."""

    def __init__(self, app: Any, *, host: str, port: int) -> None:
        self.app, self.host, self.port = app, host, port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._server is not None:
            return
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        server = uvicorn.Server(
            uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False)
        )
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="devstack-sink"
        )
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"sink on {self.host}:{self.port} did not start")
            time.sleep(0.01)
        self._server, self._thread = server, thread

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(10)
        self._server = self._thread = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class SmsSink(ThreadedServer):
    """In-process SMS sink: `.api_base`, `.account_sid`, `.auth_token`, `messages()`, `clear()`."""

    def __init__(
        self,
        directory: Path,
        *,
        host: str = "127.0.0.1",
        port: int,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
    ) -> None:
        self.directory = Path(directory)
        self.account_sid, self.auth_token = account_sid, auth_token
        app = build_app(self.directory, account_sid=account_sid, auth_token=auth_token)
        super().__init__(app, host=host, port=port)

    @property
    def api_base(self) -> str:
        return self.url

    def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        return [m for m in read_messages(self.directory) if to is None or m["to"] == to]

    def clear(self) -> None:
        for path in self.directory.glob("*.json"):
            path.unlink(missing_ok=True)


class SmsSinkProcess(SinkProcess):
    """The SMS sink as a child process (for `make run`); tests use the in-process SmsSink."""

    name = "sms"
    module = "paygate_devstack.sms_sink"


def serve_forever(server: ThreadedServer, banner: str) -> None:
    """Run a sink until SIGTERM/SIGINT (the `python -m` entry points)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start()
    print(banner, flush=True)
    try:
        while not stop.wait(1):
            pass
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m paygate_devstack.sms_sink")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=51026)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--account-sid", default=DEFAULT_ACCOUNT_SID)
    parser.add_argument(
        "--auth-token", default=os.environ.get("SMS_SINK_AUTH_TOKEN", DEFAULT_AUTH_TOKEN)
    )
    args = parser.parse_args(argv)
    sink = SmsSink(
        args.dir,
        host=args.host,
        port=args.port,
        account_sid=args.account_sid,
        auth_token=args.auth_token,
    )
    serve_forever(
        sink, f"SMS sink (Twilio Messages stand-in) on {sink.url}, messages in {args.dir}"
    )


if __name__ == "__main__":
    main()


__all__ = ["SmsSink", "SmsSinkProcess", "ThreadedServer", "read_messages"]
