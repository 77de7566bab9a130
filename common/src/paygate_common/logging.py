"""JSON logging with a correlation id and a masking filter for card numbers, tokens and secrets."""

from __future__ import annotations

import logging
import re
import sys
import uuid
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paygate_common.masking import mask_text

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_HEADER_LOWER = REQUEST_ID_HEADER.lower().encode()

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def new_request_id() -> str:
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    return request_id_var.get()


def accept_request_id(raw: str | bytes | None) -> str:
    """Keep a caller's id if it is safe to log and forward; otherwise mint one."""
    if isinstance(raw, bytes):
        raw = raw.decode("latin-1")
    if raw and _SAFE_REQUEST_ID.match(raw):
        return raw
    return new_request_id()


# --- masking ---------------------------------------------------------------------------------


def mask(text: str) -> str:
    """Redact what must never reach a log (`paygate_common.masking`'s rules; a card keeps its
    last four digits): card numbers, bearer tokens, JWTs, secrets, passwords, full emails."""
    return mask_text(text, keep_last4=True)


def mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {k: mask_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_value(v) for v in value]
    return value


class MaskingFilter(logging.Filter):
    """Masks the rendered message and string extras before any handler sees them."""

    _STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def filter(self, record: logging.LogRecord) -> bool:
        rendered = record.getMessage()
        masked = mask(rendered)
        if masked != rendered or record.args:
            record.msg, record.args = masked, None
        for key, value in list(record.__dict__.items()):
            if key not in self._STANDARD:
                record.__dict__[key] = mask_value(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = mask(logging.Formatter().formatException(record.exc_info))
        return True


class RequestIdFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.service = self.service
        return True


def configure_logging(service: str, level: str = "INFO", *, json: bool = True) -> None:
    """Route every logger (uvicorn's too) through one masked, correlated handler on stdout."""
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(RequestIdFilter(service))
    handler.addFilter(MaskingFilter())
    if json:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(service)s %(request_id)s",
                rename_fields={"levelname": "level", "asctime": "ts", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)-7s %(service)s [%(request_id)s] %(name)s: %(message)s"
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    # The access log repeats what the metrics middleware already counts.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


class RequestIdMiddleware:
    """Takes `X-Request-ID` from the caller (or mints one), exposes it to logs and echoes it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = None
        for name, value in scope["headers"]:
            if name == _REQUEST_ID_HEADER_LOWER:
                raw = value
                break
        rid = accept_request_id(raw)
        token = request_id_var.set(rid)
        header = (_REQUEST_ID_HEADER_LOWER, rid.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
