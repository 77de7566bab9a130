"""Requests that two parsers could read differently are refused: repeated headers, non-UTF-8 bodies."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from paygate_common.errors import problem_body

# Headers whose second copy would let one hop (the gateway) act on one value while the next (a
# service, a framework) acts on the other: a verified token vs. the one used, an idempotency key
# vs. the one stored, a body length vs. the body read.
SINGLE_VALUED_HEADERS = frozenset(
    {b"authorization", b"idempotency-key", b"content-type", b"content-length", b"host"}
)
_UTF8 = frozenset({"utf-8", "utf8"})


def declared_charset(content_type: bytes) -> str | None:
    """The `charset` parameter of a Content-Type value, lowercased and unquoted; None if absent."""
    lowered = content_type.lower()
    if b"charset" not in lowered:
        return None
    for param in lowered.split(b";")[1:]:
        name, _, value = param.partition(b"=")
        if name.strip() == b"charset":
            return value.strip().strip(b'"').decode("latin-1")
    return None


def refuses_charset(content_type: bytes) -> bool:
    """True when the body is declared in anything but UTF-8 (every body here is read as UTF-8)."""
    charset = declared_charset(content_type)
    return charset is not None and charset not in _UTF8


def request_problem(
    headers: list[tuple[bytes, bytes]],
) -> tuple[int, str, str] | None:
    """(status, code, detail) when the request is ambiguous or not UTF-8, else None."""
    seen: set[bytes] = set()
    content_type: bytes | None = None
    for name, value in headers:
        if name in SINGLE_VALUED_HEADERS:
            if name in seen:
                return duplicate_header(name)
            seen.add(name)
            if name == b"content-type":
                content_type = value
    if content_type is not None and refuses_charset(content_type):
        return unsupported_charset()
    return None


def duplicate_header(name: bytes) -> tuple[int, str, str]:
    header = "-".join(p.capitalize() for p in name.decode("latin-1").split("-"))
    return 400, "duplicate_header", f"The request has more than one {header} header"


def unsupported_charset() -> tuple[int, str, str]:
    return 415, "unsupported_media_type", "Request bodies must be UTF-8 (charset=utf-8 or none)"


class RequestGuardMiddleware:
    """Answers an ambiguous or non-UTF-8 request with problem+json before any route sees it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = request_problem(scope["headers"])
            if problem is not None:
                status, code, detail = problem
                body = problem_body(status, code, None, detail, instance=scope["path"])
                await send(
                    {
                        "type": "http.response.start",
                        "status": status,
                        "headers": [
                            (b"content-type", b"application/problem+json"),
                            (b"content-length", b"%d" % len(body)),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
