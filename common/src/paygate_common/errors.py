"""Domain errors with stable codes, rendered as RFC 9457 application/problem+json."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

PROBLEM_CONTENT_TYPE = "application/problem+json"

log = logging.getLogger("paygate.errors")


class PaygateError(Exception):
    """Base of every error a client may see; `code` is stable and documented."""

    status_code: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        status_code: int | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code
        self.detail = detail or self.title
        self.headers = dict(headers or {})
        self.extra = extra
        super().__init__(self.detail)


class InvalidRequest(PaygateError):
    status_code, code, title = 422, "validation_error", "The request is not valid"


class Unauthorized(PaygateError):
    status_code, code, title = 401, "unauthorized", "Authentication required"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kwargs)


class Forbidden(PaygateError):
    status_code, code, title = 403, "forbidden", "Not allowed"


class NotFound(PaygateError):
    status_code, code, title = 404, "not_found", "Not found"


class Conflict(PaygateError):
    status_code, code, title = 409, "conflict", "Conflict"


class PayloadTooLarge(PaygateError):
    status_code, code, title = 413, "payload_too_large", "Request body too large"


class RateLimited(PaygateError):
    status_code, code, title = 429, "rate_limited", "Too many requests"

    def __init__(self, retry_after: int, detail: str | None = None, **kwargs: Any) -> None:
        headers = {"Retry-After": str(max(1, int(retry_after))), **kwargs.pop("headers", {})}
        super().__init__(detail, headers=headers, **kwargs)


class UpstreamError(PaygateError):
    status_code, code, title = 502, "upstream_error", "An upstream service failed"


class ServiceUnavailable(PaygateError):
    status_code, code, title = 503, "service_unavailable", "Service unavailable"


def problem_body(
    status: int,
    code: str,
    title: str | None = None,
    detail: str | None = None,
    instance: str | None = None,
    **extra: Any,
) -> bytes:
    """The problem+json document as bytes; usable outside FastAPI (the gateway's raw ASGI path)."""
    doc: dict[str, Any] = {
        "type": f"https://paygate.dev/problems/{code}",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "code": code,
    }
    if detail:
        doc["detail"] = detail
    if instance:
        doc["instance"] = instance
    doc.update(extra)
    return orjson.dumps(doc)


def problem_response(
    status: int,
    code: str,
    title: str | None = None,
    detail: str | None = None,
    *,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    return Response(
        problem_body(status, code, title, detail, instance, **extra),
        status_code=status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=dict(headers or {}),
    )


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def _validation_errors(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    errors = []
    code = "validation_error"
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            code = "malformed_json"
        # Never echo the input back: it may be a password or a card number.
        errors.append(
            {
                "loc": [str(p) for p in err.get("loc", ())],
                "msg": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
        )
    return code, errors


def install_error_handlers(app: FastAPI) -> None:
    """Every error a client sees is problem+json with a stable code; never a stack trace."""

    async def on_paygate_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PaygateError)
        return problem_response(
            exc.status_code,
            exc.code,
            exc.title,
            exc.detail,
            instance=request.url.path,
            headers=exc.headers,
            **exc.extra,
        )

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        code, errors = _validation_errors(exc)
        status = 400 if code == "malformed_json" else 422
        detail = "The body is not valid JSON" if status == 400 else "Some fields are not valid"
        return problem_response(
            status, code, None, detail, instance=request.url.path, errors=errors
        )

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "error")
        detail = exc.detail if isinstance(exc.detail, str) else None
        return problem_response(
            exc.status_code,
            code,
            None,
            detail,
            instance=request.url.path,
            headers=getattr(exc, "headers", None),
        )

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            500, "internal_error", None, "An unexpected error occurred", instance=request.url.path
        )

    app.add_exception_handler(PaygateError, on_paygate_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
