"""user-service's `/internal/*` API as types: what it answers, what its callers parse, what stand-ins build.

user-service declares these as its routes' `response_model` (and request bodies), so its OpenAPI
document is generated from them; payment-service, notification-service, order-service,
admin-service and the gateway parse the answers with the same classes (`X.model_validate(...)`),
and a test stand-in of user-service builds its answers from them, so a stand-in can no longer
drift from the real schema. Class names are the OpenAPI component names: keep them stable.

Responses ignore unknown fields (a newer user-service may add some); requests forbid them.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from paygate_common.auth.tokens import Role

# The paths, so a caller and a stand-in name the same route as user-service's router.
PAYMENT_CONTEXT_PATH = "/internal/users/{user_id}/payment-context"
CONTACT_PATH = "/internal/users/{user_id}/contact"
USERS_PATH = "/internal/users"
USER_PATH = "/internal/users/{user_id}"
API_KEY_RESOLVE_PATH = "/internal/api-keys/resolve"

OpaqueToken = Annotated[str, Field(min_length=1, max_length=256, repr=False)]


class _InternalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _InternalResponse(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ChargeableMethod(_InternalResponse):
    """A saved method as payment-service needs it; `token` is the provider's PaymentMethod id."""

    id: uuid.UUID
    provider: Literal["stripe"]
    token: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


class PaymentContextRead(_InternalResponse):
    """`GET /internal/users/{user_id}/payment-context[?payment_method_id=]`: who is charged, with what.

    `payment_method` is the named method, else the default; null when the user has none.
    """

    user_id: uuid.UUID
    email: str
    full_name: str
    provider_customer_id: str | None
    payment_method: ChargeableMethod | None


class ContactRead(_InternalResponse):
    """`GET /internal/users/{user_id}/contact`: where notification-service reaches a user."""

    user_id: uuid.UUID
    email: str
    full_name: str
    phone: str | None = Field(default=None, description="E.164, when the profile has one")


class AdminUserRead(_InternalResponse):
    """An account as admin-service shows it."""

    id: uuid.UUID
    email: str
    full_name: str
    phone: str | None
    role: Role
    created_at: datetime
    disabled: bool
    updated_at: datetime


class AdminUserPage(_InternalResponse):
    """`GET /internal/users`: one page of accounts, newest first."""

    items: list[AdminUserRead]
    next_cursor: str | None


@dataclass(frozen=True)
class AdminUserSearch:
    """`GET /internal/users`'s query, which admin-service's `GET /admin/users` takes and forwards."""

    q: str | None = None
    role: Role | None = None
    disabled: bool | None = None
    limit: int | None = None
    cursor: str | None = None

    def params(self) -> dict[str, Any]:
        """As query parameters (unset ones left out: user-service's defaults apply)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def admin_user_search(
    # no control characters: user-service's search refuses them
    q: Annotated[
        str | None,
        Query(max_length=320, pattern=r"^[^\x00-\x1f\x7f]*$", description="Part of the email"),
    ] = None,
    role: Role | None = None,
    disabled: bool | None = None,
    limit: Annotated[int | None, Query(ge=1, le=100, description="Page size")] = None,
    cursor: Annotated[
        str | None, Query(max_length=512, description="`next_cursor` of the previous page")
    ] = None,
) -> AdminUserSearch:
    return AdminUserSearch(q=q, role=role, disabled=disabled, limit=limit, cursor=cursor)


AdminUserSearchDep = Annotated[AdminUserSearch, Depends(admin_user_search)]


class AdminUserUpdate(_InternalRequest):
    """`PATCH /internal/users/{user_id}`: only the fields sent change."""

    role: Role | None = None
    disabled: bool | None = None


class ApiKeyResolveRequest(_InternalRequest):
    """`POST /internal/api-keys/resolve`: the key travels in the body, never in a URL."""

    key: OpaqueToken


class ApiKeyResolved(_InternalResponse):
    """What the gateway forwards in place of the key: a short-lived access token of its owner."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    api_key_id: uuid.UUID
    user_id: uuid.UUID
    role: Role
    scopes: list[str] | None


__all__ = [
    "API_KEY_RESOLVE_PATH",
    "CONTACT_PATH",
    "PAYMENT_CONTEXT_PATH",
    "USERS_PATH",
    "USER_PATH",
    "AdminUserPage",
    "AdminUserRead",
    "AdminUserSearch",
    "AdminUserSearchDep",
    "AdminUserUpdate",
    "ApiKeyResolveRequest",
    "ApiKeyResolved",
    "ChargeableMethod",
    "ContactRead",
    "PaymentContextRead",
]
