"""`/internal/*`: what payment-service and notification-service read, behind a service token."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from paygate_common.internal.users import (
    AdminUserPage,
    AdminUserRead,
    AdminUserUpdate,
    ApiKeyResolved,
    ApiKeyResolveRequest,
    ChargeableMethod,
    ContactRead,
    PaymentContextRead,
)


async def save(client: httpx.AsyncClient, account: Any, **extra: Any) -> dict[str, Any]:
    r = await client.post(
        "/users/me/payment-methods",
        json={"provider": "stripe", "token": "pm_card_visa", **extra},
        headers=account.headers,
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


@pytest.mark.parametrize("path", ["payment-context", "contact"])
async def test_internal_endpoints_need_a_service_token(
    client: httpx.AsyncClient, new_account: Callable[..., Awaitable[Any]], path: str
) -> None:
    account = await new_account()
    url = f"/internal/users/{account.id}/{path}"
    for headers in ({}, account.headers, {"Authorization": "Bearer not-a-token"}):
        r = await client.get(url, headers=headers)
        assert r.status_code == 401, (headers, r.text)
        assert r.json()["code"] == "service_token_invalid"


async def test_payment_context_returns_the_default_method_and_contact_details(
    client: httpx.AsyncClient,
    new_account: Callable[..., Awaitable[Any]],
    service_headers: dict[str, str],
) -> None:
    account = await new_account()
    empty = await client.get(
        f"/internal/users/{account.id}/payment-context", headers=service_headers
    )
    assert empty.status_code == 200, empty.text
    assert empty.json() == {
        "user_id": str(account.id),
        "email": account.email,
        "full_name": "Ann Lee",
        "provider_customer_id": None,
        "payment_method": None,
    }

    first = await save(client, account)
    second = await save(client, account)
    r = await client.get(f"/internal/users/{account.id}/payment-context", headers=service_headers)
    assert r.status_code == 200, r.text
    context = r.json()
    assert context["email"] == account.email
    assert context["provider_customer_id"].startswith("cus_")
    method = context["payment_method"]
    assert set(method) == {"id", "provider", "token", "brand", "last4", "exp_month", "exp_year"}
    assert method["id"] == first["id"]
    assert method["provider"] == "stripe"
    assert method["token"].startswith("pm_") and method["token"] != "pm_card_visa"
    assert (method["brand"], method["last4"]) == ("visa", "4242")

    named = await client.get(
        f"/internal/users/{account.id}/payment-context",
        params={"payment_method_id": second["id"]},
        headers=service_headers,
    )
    assert named.json()["payment_method"]["id"] == second["id"]
    assert named.json()["payment_method"]["token"] != method["token"]

    contact = await client.get(f"/internal/users/{account.id}/contact", headers=service_headers)
    assert contact.json() == {
        "user_id": str(account.id),
        "email": account.email,
        "full_name": "Ann Lee",
        "phone": None,
    }
    # What notification-service parses with: the shared model reads the answer as it is.
    assert ContactRead.model_validate(contact.json()).email == account.email
    assert PaymentContextRead.model_validate(named.json()).payment_method is not None


async def test_contact_carries_the_profile_phone_for_sms(
    client: httpx.AsyncClient,
    new_account: Callable[..., Awaitable[Any]],
    service_headers: dict[str, str],
) -> None:
    account = await new_account()
    r = await client.patch("/users/me", json={"phone": "+14155550123"}, headers=account.headers)
    assert r.status_code == 200, r.text
    contact = await client.get(f"/internal/users/{account.id}/contact", headers=service_headers)
    assert ContactRead.model_validate(contact.json()).phone == "+14155550123"


async def test_someone_elses_method_or_an_unknown_user_is_404(
    client: httpx.AsyncClient,
    new_account: Callable[..., Awaitable[Any]],
    service_headers: dict[str, str],
) -> None:
    owner, other = await new_account(), await new_account()
    method = await save(client, owner)
    r = await client.get(
        f"/internal/users/{other.id}/payment-context",
        params={"payment_method_id": method["id"]},
        headers=service_headers,
    )
    assert r.status_code == 404
    assert r.json()["code"] == "payment_method_not_found"
    for path in ("payment-context", "contact"):
        missing = await client.get(
            f"/internal/users/{uuid.uuid4()}/{path}", headers=service_headers
        )
        assert missing.status_code == 404
        assert missing.json()["code"] == "user_not_found"
    bad = await client.get("/internal/users/not-a-uuid/contact", headers=service_headers)
    assert bad.status_code == 422


async def test_internal_routes_are_tagged_internal_in_the_openapi(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    internal = {p: v for p, v in spec["paths"].items() if p.startswith("/internal/")}
    assert set(internal) == {
        "/internal/users/{user_id}/payment-context",
        "/internal/users/{user_id}/contact",
        "/internal/users",
        "/internal/users/{user_id}",
        "/internal/api-keys/resolve",
    }
    for operations in internal.values():
        for operation in operations.values():
            assert operation["tags"] == ["internal"]


def _without_defaults(properties: dict[str, Any]) -> dict[str, Any]:
    return {name: {k: v for k, v in p.items() if k != "default"} for name, p in properties.items()}


@pytest.mark.parametrize(
    "model",
    [
        PaymentContextRead,
        ChargeableMethod,
        ContactRead,
        AdminUserRead,
        AdminUserPage,
        AdminUserUpdate,
        ApiKeyResolveRequest,
        ApiKeyResolved,
    ],
)
async def test_the_internal_schemas_are_the_shared_models(
    client: httpx.AsyncClient, model: type[BaseModel]
) -> None:
    # The callers and their test stand-ins use paygate_common.internal.users: the document
    # user-service serves must describe exactly those classes, not a copy that can drift.
    spec = (await client.get("/openapi.json")).json()
    for mode in ("serialization", "validation"):
        expected = model.model_json_schema(mode=mode, ref_template="#/components/schemas/{model}")
        expected.pop("$defs", None)
        published = spec["components"]["schemas"][model.__name__]
        # FastAPI leaves a response field's default out of the document; the rest must match.
        assert _without_defaults(published["properties"]) == _without_defaults(
            expected["properties"]
        ), mode
        assert set(published.get("required", [])) == set(expected.get("required", [])), mode
