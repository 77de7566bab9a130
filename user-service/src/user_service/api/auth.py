"""Sign-up, sign-in (JSON and the OAuth2 password form), refresh, sign-out, the public key set."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Response, status

from paygate_common.auth import SigningKey, jwks_document
from paygate_common.db import SessionDep
from paygate_common.errors import business_rule, problem
from user_service.api.deps import (
    ActorDep,
    HasherDep,
    RecordingSessionDep,
    SettingsDep,
    SignInContext,
    SignInDep,
    SigningKeyDep,
)
from user_service.api.schemas import (
    JWKSRead,
    RefreshRequest,
    SigninRequest,
    SignupRequest,
    TokenResponse,
    UserRead,
)
from user_service.domain import accounts, sessions, tokens
from user_service.settings import Settings

router = APIRouter(tags=["auth"])

SIGNIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: problem("`invalid_credentials`"),
    403: problem("`account_disabled`"),
    429: problem("`too_many_attempts`, with Retry-After"),
}


@router.post(
    "/auth/signup",
    status_code=status.HTTP_201_CREATED,
    response_model=UserRead,
    summary="Create a customer account",
    responses={
        409: problem("`email_taken`"),
        422: business_rule(
            "weak_password",
            description="The password breaks the policy (`reason`: `too_short`, `too_long`,"
            " `matches_email`, `repeated_character`, `too_common`), or `validation_error`",
        ),
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
        actor=context.actor,
    )
    started = await sessions.start_session(
        session=context.session,
        user=user,
        user_agent=context.user_agent,
        settings=context.settings,
        actor=context.actor,
    )
    return _token_pair(started, signing_key=context.signing_key, settings=context.settings)


def _token_pair(
    tokens_for: sessions.SessionTokens, *, signing_key: SigningKey, settings: Settings
) -> TokenResponse:
    issued = tokens.issue_for(
        tokens_for.user,
        signing_key=signing_key,
        settings=settings,
        extra_claims={"sid": str(tokens_for.session_id)},
    )
    return TokenResponse(
        access_token=issued.access_token,
        refresh_token=tokens_for.refresh_token,
        expires_in=issued.expires_in,
    )


@router.post(
    "/auth/signin",
    response_model=TokenResponse,
    summary="Exchange email and password for an access token and a refresh token",
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
    username: Annotated[
        str,
        Form(
            min_length=1,
            max_length=320,
            # a control character can be no one's email (and NUL cannot even be looked up)
            pattern=r"^[^\x00-\x1f\x7f]*$",
            description="The email",
        ),
    ],
    password: Annotated[
        str, Form(min_length=1, max_length=1024, json_schema_extra={"format": "password"})
    ],
    context: SignInDep,
) -> TokenResponse:
    return await _sign_in(context, email=username, password=password)


@router.post(
    "/auth/refresh",
    response_model=TokenResponse,
    summary="Rotate a refresh token: the old one is spent, a new pair is returned",
    description=(
        "Presenting a refresh token that was already spent revokes its whole session (the"
        " owner's newer token stops working too) and answers 401 `refresh_token_reused`."
    ),
    responses={
        401: problem("`refresh_token_invalid` or `refresh_token_reused`"),
        403: problem("`account_disabled`"),
    },
)
async def refresh(
    body: RefreshRequest,
    session: RecordingSessionDep,
    signing_key: SigningKeyDep,
    settings: SettingsDep,
    who: ActorDep,
) -> TokenResponse:
    rotated = await sessions.rotate(
        session=session, refresh_token=body.refresh_token, settings=settings, actor=who
    )
    return _token_pair(rotated, signing_key=signing_key, settings=settings)


@router.post(
    "/auth/signout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke the session of a refresh token (an unknown token is ignored)",
)
async def signout(body: RefreshRequest, session: SessionDep, who: ActorDep) -> Response:
    await sessions.sign_out(session=session, refresh_token=body.refresh_token, actor=who)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/.well-known/jwks.json",
    response_model=JWKSRead,
    summary="Public keys that verify access tokens (RFC 7517)",
)
async def jwks(signing_key: SigningKeyDep) -> dict[str, Any]:
    return jwks_document([signing_key])
