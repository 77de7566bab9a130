"""Service-to-service endpoints (`/internal/*`): service token required, never routed publicly."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request

from paygate_common.audit import Actor
from paygate_common.auth import ServiceCaller, key_environment
from paygate_common.db import SessionDep
from paygate_common.errors import problem
from paygate_common.internal.users import (
    API_KEY_RESOLVE_PATH,
    USERS_PATH,
    AdminUserPage,
    AdminUserRead,
    AdminUserSearchDep,
    AdminUserUpdate,
    ApiKeyResolved,
    ApiKeyResolveRequest,
    ChargeableMethod,
    ContactRead,
    PaymentContextRead,
)
from user_service.api.deps import ApiKeyHasherDep, GatewayCaller, SettingsDep, SigningKeyDep
from user_service.domain import accounts, api_keys, payment_methods, tokens

router = APIRouter(prefix=USERS_PATH, tags=["internal"])
keys_router = APIRouter(tags=["internal"])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: problem("`service_token_invalid`"),
    404: problem("`user_not_found` or `payment_method_not_found`"),
}


@router.get(
    "/{user_id}/payment-context",
    response_model=PaymentContextRead,
    summary="What payment-service needs to charge a user (the named method, else the default)",
    responses=ERRORS,
)
async def payment_context(
    user_id: uuid.UUID,
    caller: ServiceCaller,
    session: SessionDep,
    payment_method_id: uuid.UUID | None = None,
) -> PaymentContextRead:
    context = await payment_methods.payment_context(
        session=session, user_id=user_id, payment_method_id=payment_method_id
    )
    user, method = context.user, context.payment_method
    return PaymentContextRead(
        user_id=user.id,
        email=user.email,
        full_name=user.full_name,
        provider_customer_id=user.stripe_customer_id,
        payment_method=None
        if method is None
        else ChargeableMethod(
            id=method.id,
            provider="stripe",
            token=method.provider_payment_method_id,
            brand=method.brand,
            last4=method.last4,
            exp_month=method.exp_month,
            exp_year=method.exp_year,
        ),
    )


@router.get(
    "/{user_id}/contact",
    response_model=ContactRead,
    summary="Where notification-service reaches a user",
    responses=ERRORS,
)
async def contact(user_id: uuid.UUID, caller: ServiceCaller, session: SessionDep) -> ContactRead:
    user = await accounts.get_user(session=session, user_id=user_id)
    return ContactRead(
        user_id=user.id, email=user.email, full_name=user.full_name, phone=user.phone
    )


@router.get(
    "",
    response_model=AdminUserPage,
    summary="For admin-service: search accounts (email substring, role, status), newest first",
    responses={401: problem("`service_token_invalid`"), 422: problem("`invalid_cursor`")},
)
async def search_users(
    caller: ServiceCaller,
    session: SessionDep,
    settings: SettingsDep,
    query: AdminUserSearchDep,
) -> AdminUserPage:
    page = await accounts.search_users(
        session=session,
        email_contains=query.q.strip() if query.q else None,
        role=query.role,
        disabled=query.disabled,
        limit=query.limit or settings.list_default_limit,
        cursor=query.cursor,
    )
    return AdminUserPage(
        items=[AdminUserRead.model_validate(u) for u in page.items], next_cursor=page.next_cursor
    )


def _operator(request: Request, caller: str) -> Actor:
    """The operator admin-service acts for: `X-Actor-Id` (their user id) and `X-Forwarded-For`.

    Trusted because the call carries a service token; without the header the service itself
    is the actor.
    """
    raw = request.headers.get("x-actor-id")
    try:
        actor_id = uuid.UUID(raw) if raw else None
    except ValueError:
        actor_id = None
    origin = Actor.of(request)
    return Actor(
        actor_id=actor_id,
        actor_role="admin" if actor_id else caller,
        source_ip=origin.source_ip,
    )


@router.patch(
    "/{user_id}",
    response_model=AdminUserRead,
    summary="For admin-service: change a user's role or disable/enable the account (audited)",
    responses=ERRORS,
)
async def administer_user(
    user_id: uuid.UUID,
    body: AdminUserUpdate,
    request: Request,
    caller: ServiceCaller,
    session: SessionDep,
) -> AdminUserRead:
    user = await accounts.administer_user(
        session=session,
        user_id=user_id,
        role=body.role,
        disabled=body.disabled,
        actor=_operator(request, caller),
    )
    return AdminUserRead.model_validate(user)


@keys_router.post(
    API_KEY_RESOLVE_PATH,
    response_model=ApiKeyResolved,
    summary="For the gateway: an API key → a short-lived access token of its owner",
    description=(
        "The key travels in the body, never in a URL. A revoked or unknown key, or one whose"
        " owner is disabled, answers 401 `api_key_invalid`; the token carries `api_key_id` and"
        " the key's scopes as `scope`."
    ),
    responses={
        401: problem("`api_key_invalid` or `service_token_invalid`"),
        403: problem("`service_not_allowed`: only the gateway may call this"),
    },
)
async def resolve_api_key(
    body: ApiKeyResolveRequest,
    caller: GatewayCaller,
    session: SessionDep,
    hasher: ApiKeyHasherDep,
    signing_key: SigningKeyDep,
    settings: SettingsDep,
) -> ApiKeyResolved:
    resolved = await api_keys.resolve_api_key(
        session=session,
        hasher=hasher,
        key=body.key,
        environment=key_environment(settings.environment),
    )
    row, owner = resolved.row, resolved.owner
    claims: dict[str, Any] = {"api_key_id": str(row.id)}
    if row.scopes is not None:
        claims["scope"] = " ".join(row.scopes)
    issued = tokens.issue_for(
        owner,
        signing_key=signing_key,
        settings=settings,
        ttl_seconds=settings.api_key_token_ttl_seconds,
        extra_claims=claims,
    )
    return ApiKeyResolved(
        access_token=issued.access_token,
        expires_in=issued.expires_in,
        api_key_id=row.id,
        user_id=owner.id,
        role=owner.role,
        scopes=row.scopes,
    )
