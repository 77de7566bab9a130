"""Every service's OpenAPI, built in process: internal answers are the shared models, errors problem+json."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel

from paygate_common.analytics import ANALYTICS_PATH, AnalyticsRead
from paygate_common.errors import PROBLEM_CONTENT_TYPE, PROBLEM_SCHEMA_NAME
from paygate_common.internal import audit, notifications, users
from paygate_common.internal import config as internal_config
from paygate_devstack.services import implemented_services, repo_root

ROOT = repo_root(Path(__file__).resolve().parent)

# Every route another service calls and parses: (serving service, method, path) -> the model its
# callers parse the answer with. The serving route must declare exactly that model.
INTERNAL_ANSWERS: dict[tuple[str, str, str], type[BaseModel]] = {
    ("user", "get", users.PAYMENT_CONTEXT_PATH): users.PaymentContextRead,
    ("user", "get", users.CONTACT_PATH): users.ContactRead,
    ("user", "get", users.USERS_PATH): users.AdminUserPage,
    ("user", "patch", users.USER_PATH): users.AdminUserRead,
    ("user", "post", users.API_KEY_RESOLVE_PATH): users.ApiKeyResolved,
    ("admin", "get", internal_config.CONFIG_PATH): internal_config.ConfigRead,
    ("transaction", "get", ANALYTICS_PATH): AnalyticsRead,
    # operator routes admin-service's console reads with the operator's token
    ("audit", "get", audit.AUDIT_EVENTS_PATH): audit.AuditRecordPage,
    ("audit", "get", audit.AUDIT_VERIFY_PATH): audit.VerifyRead,
    ("notification", "get", notifications.DEAD_LETTERS_PATH): notifications.DeadLetterPage,
}


@cache
def app_of(service: str) -> FastAPI:
    spec = next(s for s in implemented_services(ROOT) if s.name == service)
    app: FastAPI = importlib.import_module(f"{spec.package}.main").create_app()
    return app


@cache
def openapi_of(service: str) -> dict[str, Any]:
    return app_of(service).openapi()


def _api_routes(routes: Any, prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """Every APIRoute with its full path, also inside included routers."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route
        elif (router := getattr(route, "original_router", None)) is not None:
            context = getattr(route, "include_context", None)
            yield from _api_routes(router.routes, prefix + getattr(context, "prefix", ""))


@pytest.mark.parametrize(
    ("service", "method", "path"), list(INTERNAL_ANSWERS), ids=lambda v: str(v)
)
def test_each_internal_route_serves_the_model_its_callers_parse(
    service: str, method: str, path: str
) -> None:
    model = INTERNAL_ANSWERS[service, method, path]
    (route,) = [
        r
        for full, r in _api_routes(app_of(service).routes)
        if full == path and method.upper() in r.methods
    ]
    # the very class: its OpenAPI component is the schema callers and stand-ins validate with
    assert route.response_model is model, (path, route.response_model)
    operation = openapi_of(service)["paths"][path][method]
    ok = next(v for k, v in operation["responses"].items() if k.startswith("2"))
    ref = ok["content"]["application/json"]["schema"]["$ref"]
    assert ref.rsplit("/", 1)[-1] in (model.__name__, f"{model.__name__}-Output")


SERVICES = [s.name for s in implemented_services(ROOT) if s.name != "gateway"]


@pytest.mark.parametrize("service", SERVICES)
def test_every_declared_error_answer_is_documented_as_problem_json(service: str) -> None:
    stragglers = []
    for path, item in openapi_of(service)["paths"].items():
        for method, operation in item.items():
            if not isinstance(operation, dict):
                continue
            for status, response in operation.get("responses", {}).items():
                if not (status.isdigit() and int(status) >= 400):
                    continue
                if (path, status) == ("/ready", "503"):
                    continue  # readiness answers its checks (JSON), like its 200
                schema = response.get("content", {}).get(PROBLEM_CONTENT_TYPE, {}).get("schema")
                if schema != {"$ref": f"#/components/schemas/{PROBLEM_SCHEMA_NAME}"}:
                    stragglers.append(f"{method.upper()} {path} {status}")
    assert not stragglers, stragglers
