"""Domain errors with stable codes, rendered as RFC 9457 application/problem+json."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from paygate_common.db import is_transaction_conflict

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


class PaymentMethodInvalid(InvalidRequest):
    """A payment method user-service does not hold for this customer, for a service that asked
    it (order-service, payment-service): the same answer for one that does not exist and one
    that is someone else's."""

    code, title = "payment_method_not_found", "No such payment method"


class UserDirectoryUnavailable(ServiceUnavailable):
    """user-service could not answer whether the customer holds the payment method."""

    code, title = "user_service_unavailable", "Payment methods cannot be checked right now"


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
        if is_transaction_conflict(exc):
            # Two requests on the same rows; one lost. Nothing was applied: the caller retries.
            log.warning("transaction conflict on %s %s: %s", request.method, request.url.path, exc)
            return problem_response(
                503,
                "transaction_conflict",
                None,
                "A concurrent change to the same payment won; retry the request",
                instance=request.url.path,
                headers={"Retry-After": "1"},
            )
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            500, "internal_error", None, "An unexpected error occurred", instance=request.url.path
        )

    app.add_exception_handler(PaygateError, on_paygate_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)


# --- the same truth in the OpenAPI document ---------------------------------------------------

PROBLEM_SCHEMA_NAME = "Problem"
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; `code` is stable and documented per status.",
    "type": "object",
    "required": ["type", "title", "status", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "code": {"type": "string", "pattern": "^[a-z0-9_]+$"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"type": "string"}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
    "additionalProperties": True,
}
_PROBLEM_REF = {"$ref": f"#/components/schemas/{PROBLEM_SCHEMA_NAME}"}

# What each status means here, with its stable codes (what a client branches on).
PROBLEM_DESCRIPTIONS: dict[int, str] = {
    400: "Bad request: a repeated single-valued header (`duplicate_header`), malformed JSON "
    "(`malformed_json`), an invalid Idempotency-Key (`idempotency_key_invalid`) or path "
    "(`invalid_path`)",
    401: "No valid credentials (`token_missing`, `token_invalid`, `token_expired`, ...)",
    403: "Authenticated but not allowed (`forbidden`, `admin_required`, `account_disabled`)",
    404: "Not found, or not the caller's (`not_found`, `<entity>_not_found`)",
    405: "Method not allowed; `Allow` lists the methods this path has",
    409: "Conflict: the same Idempotency-Key is still in flight (`idempotency_key_in_progress`) "
    "or the resource is in another state",
    413: "Request body too large (`payload_too_large`)",
    415: "The body is not UTF-8 (`unsupported_media_type`)",
    422: "Some fields are not valid (`validation_error`), or an Idempotency-Key reused with "
    "another body (`idempotency_key_reused`)",
    429: "Too many requests (`rate_limited`); `Retry-After` says when to try again",
    502: "An upstream service failed (`upstream_error`, `upstream_unreachable`)",
    503: "Temporarily unavailable (`upstream_unavailable`, `jwks_unavailable`, ...)",
    504: "An upstream service did not answer in time (`upstream_timeout`)",
}


def problem_response_doc(status: int, description: str | None = None) -> dict[str, Any]:
    """One OpenAPI response object: problem+json with the shared schema."""
    return {
        "description": description or PROBLEM_DESCRIPTIONS.get(status, HTTPStatus(status).phrase),
        "content": {PROBLEM_CONTENT_TYPE: {"schema": dict(_PROBLEM_REF)}},
    }


def problem(description: str) -> dict[str, Any]:
    """A route's `responses=` entry for an error status: problem+json with the shared schema;
    `description` names the stable `code`s it answers with."""
    return {
        "description": description,
        "content": {PROBLEM_CONTENT_TYPE: {"schema": dict(_PROBLEM_REF)}},
    }


# The `responses=` of an operator route and of an `/internal/*` route (service token).
ADMIN_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: problem(PROBLEM_DESCRIPTIONS[401]),
    403: problem("Authenticated but not an admin (`admin_required`)"),
}
SERVICE_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: problem("No valid service token (`service_token_invalid`)"),
}


# OpenAPI extension on a response object: the stable `code`s a request that satisfies the
# schema can still get with this status, because the rule depends on state or on a table the
# schema cannot state (a provider's minimum charge per currency, whether a token exists at the
# provider, where a host name resolves). Clients see which codes to expect; the Schemathesis
# kit accepts exactly these codes (and no other 4xx) for schema-valid requests.
BUSINESS_RULE_CODES = "x-business-rule-codes"


def business_rule(*codes: str, description: str) -> dict[str, Any]:
    """A `responses=` entry for rules a schema-valid request can still break: `codes` (each a
    stable problem `code`) are listed in the description and machine-readably."""
    if not codes:
        raise ValueError("a business rule names the problem codes it answers with")
    listed = ", ".join(f"`{c}`" for c in codes)
    return {
        "description": f"{description}. Business rules a schema-valid request can break: {listed}",
        "content": {PROBLEM_CONTENT_TYPE: {"schema": dict(_PROBLEM_REF)}},
        BUSINESS_RULE_CODES: list(codes),
    }


def _statuses_for(path: str, op: dict[str, Any]) -> set[int]:
    """Every 4xx the shared stack can answer this operation with."""
    statuses = {400, 415}  # the request guard answers these on every route
    params = op.get("parameters") or []
    if params or "requestBody" in op:
        statuses.add(422)
    if any(p.get("in") == "path" for p in params) or "{" in path:
        statuses.add(404)
    if op.get("security"):
        statuses |= {401, 403}
    if any(
        p.get("in") == "header" and str(p.get("name", "")).lower() == "idempotency-key"
        for p in params
    ):
        statuses |= {409, 422}
    return statuses


def document_problems(
    spec: dict[str, Any], *, extra: Callable[[str, str, dict[str, Any]], set[int]] | None = None
) -> dict[str, Any]:
    """Declare, on every operation, each error status it can return as problem+json.

    Statuses a route already declares keep their description but get the problem+json content
    (FastAPI would document its 422 as `application/json` HTTPValidationError, which is not what
    a client receives). `extra(path, method, op)` adds statuses (the gateway's 429, 502, ...).
    """
    spec.setdefault("components", {}).setdefault("schemas", {})[PROBLEM_SCHEMA_NAME] = (
        PROBLEM_SCHEMA
    )
    for path, item in (spec.get("paths") or {}).items():
        for method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            responses: dict[str, Any] = op["responses"]
            wanted = _statuses_for(path, op)
            if extra is not None:
                wanted |= extra(path, method, op)
            # what the route declares, 5xx included: every error it answers is problem+json
            wanted |= {int(s) for s in responses if s.isdigit() and 400 <= int(s) < 600}
            for status in sorted(wanted):
                existing = responses.get(str(status)) or {}
                content = existing.get("content") or {}
                if status >= 500 and content and PROBLEM_CONTENT_TYPE not in content:
                    continue  # a 5xx declared with a body of its own (`/ready`'s checks)
                declared = existing.get("description")
                if declared == "Validation Error":  # FastAPI's generic text: ours names codes
                    declared = None
                doc = problem_response_doc(status, declared or None)
                # extensions (BUSINESS_RULE_CODES) the route declared stay with the response
                doc.update({k: v for k, v in existing.items() if k.startswith("x-")})
                responses[str(status)] = doc
            op["responses"] = dict(sorted(responses.items()))
    schemas = spec["components"]["schemas"]
    # FastAPI's own validation schemas: no response refers to them any more.
    text = orjson.dumps(spec.get("paths") or {})
    for name in ("HTTPValidationError", "ValidationError"):
        if name in schemas and f"#/components/schemas/{name}".encode() not in text:
            del schemas[name]
    return spec
