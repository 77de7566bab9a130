"""Sign-up, sign-in (JSON and the OAuth2 password form) and the public key set."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, status

from paygate_common.auth import jwks_document
from paygate_common.db import SessionDep
from user_service.api.deps import HasherDep, SignInContext, SignInDep, SigningKeyDep
from user_service.api.schemas import (
    JWKSRead,
    SigninRequest,
    SignupRequest,
    TokenResponse,
    UserRead,
    problem,
)
from user_service.domain import accounts, tokens

router = APIRouter(tags=["auth"])

SIGNIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: problem("`invalid_credentials`"),
    429: problem("`too_many_attempts`, with Retry-After"),
}


@router.post(
    "/auth/signup",
    status_code=status.HTTP_201_CREATED,
    response_model=UserRead,
    summary="Create a customer account",
    responses={
        409: problem("`email_taken`"),
        422: problem("`weak_password` (with `reason`) or `validation_error`"),
    },
)
async def signup(body: SignupRequest, session: SessionDep, hasher: HasherDep) -> UserRead:
    user = await accounts.register(
        session=session,
        hasher=hasher,
        email=body.email,
        password=body.password,
        full_name=body.full_name,
    )
    return UserRead.model_validate(user)


async def _sign_in(context: SignInContext, *, email: str, password: str) -> TokenResponse:
    user = await accounts.authenticate(
        session=context.session,
        hasher=context.hasher,
        throttle=context.throttle,
        email=email,
        password=password,
        client_ip=context.client_ip,
    )
    issued = tokens.issue_for(user, signing_key=context.signing_key, settings=context.settings)
    return TokenResponse(access_token=issued.access_token, expires_in=issued.expires_in)


@router.post(
    "/auth/signin",
    response_model=TokenResponse,
    summary="Exchange email and password for an access token",
    responses=SIGNIN_ERRORS,
)
async def signin(body: SigninRequest, context: SignInDep) -> TokenResponse:
    return await _sign_in(context, email=body.email, password=body.password)


@router.post(
    "/auth/token",
    response_model=TokenResponse,
    summary="OAuth2 password grant (form fields `username`, `password`) for Swagger's Authorize",
    responses=SIGNIN_ERRORS,
)
async def token(
    username: Annotated[str, Form(min_length=1, max_length=320, description="The email")],
    password: Annotated[
        str, Form(min_length=1, max_length=1024, json_schema_extra={"format": "password"})
    ],
    context: SignInDep,
) -> TokenResponse:
    return await _sign_in(context, email=username, password=password)


@router.get(
    "/.well-known/jwks.json",
    response_model=JWKSRead,
    summary="Public keys that verify access tokens (RFC 7517)",
)
async def jwks(signing_key: SigningKeyDep) -> dict[str, Any]:
    return jwks_document([signing_key])
