"""Dependencies: the objects the lifespan built once, the units of work, the kinds of caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from paygate_common.audit import Actor
from paygate_common.auth import CurrentPrincipal, Principal, ServiceCaller, SigningKey
from paygate_common.deps import SettingsDep as SharedSettingsDep
from paygate_common.deps import app_state
from paygate_common.errors import PaygateError
from user_service.domain.api_keys import ApiKeyHasher
from user_service.domain.errors import KeepsWhatWasWritten, ServiceNotAllowed, SessionRequired
from user_service.domain.passwords import PasswordHasher
from user_service.domain.throttling import SigninThrottle
from user_service.providers.stripe import StripeCards
from user_service.settings import Settings


def client_ip(request: Request) -> str:
    """The peer address; uvicorn resolves X-Forwarded-For from trusted proxies (the gateway)."""
    return request.client.host if request.client else "unknown"


async def session_keeping_denials(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work, which also commits when a `KeepsWhatWasWritten` error ends it.

    A refused sign-in still records `auth.signin_failed`, and a reused refresh token still
    revokes its session: those writes are the point of the refusal, so they must not roll back.
    Any other error rolls back as usual.
    """
    async with request.app.state.sessionmaker() as session:
        await session.begin()
        try:
            yield session
        except PaygateError as exc:
            if isinstance(exc, KeepsWhatWasWritten):
                await session.commit()
            else:
                await session.rollback()
            raise
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


# Committed before the response is sent (scope="function"), as paygate_common.db.SessionDep.
RecordingSessionDep = Annotated[AsyncSession, Depends(session_keeping_denials, scope="function")]


def actor(request: Request) -> Actor:
    """Who acts, for audit events: the signed-in user if any, and the client address."""
    principal: Principal | None = getattr(request.state, "principal", None)
    return Actor.of(request, principal)


ActorDep = Annotated[Actor, Depends(actor)]


async def require_session_principal(principal: CurrentPrincipal) -> Principal:
    """A caller signed in with a password: an API key may not mint more keys or see sessions.

    A leaked key must not be able to entrench itself (create keys, revoke the owner's sessions).
    """
    if principal.via_api_key:
        raise SessionRequired("Sign in with a password to manage API keys and sessions")
    return principal


SessionPrincipal = Annotated[Principal, Depends(require_session_principal)]


async def require_gateway(caller: ServiceCaller) -> str:
    """Only the gateway turns API keys into access tokens; other services have no use for it."""
    if caller != "gateway":
        raise ServiceNotAllowed("Only the gateway may resolve API keys")
    return caller


GatewayCaller = Annotated[str, Depends(require_gateway)]

SettingsDep = SharedSettingsDep[Settings]
ApiKeyHasherDep = Annotated[ApiKeyHasher, Depends(app_state("api_key_hasher"))]
HasherDep = Annotated[PasswordHasher, Depends(app_state("password_hasher"))]
ThrottleDep = Annotated[SigninThrottle, Depends(app_state("signin_throttle"))]
SigningKeyDep = Annotated[SigningKey, Depends(app_state("signing_key"))]
StripeCardsDep = Annotated[StripeCards, Depends(app_state("stripe_cards"))]
ClientIP = Annotated[str, Depends(client_ip)]


@dataclass(frozen=True)
class SignInContext:
    """Everything a sign-in needs, shared by the JSON and the OAuth2 form endpoints."""

    session: AsyncSession
    hasher: PasswordHasher
    throttle: SigninThrottle
    signing_key: SigningKey
    settings: Settings
    client_ip: str
    actor: Actor
    user_agent: str | None


def _sign_in_context(
    request: Request,
    session: RecordingSessionDep,
    hasher: HasherDep,
    throttle: ThrottleDep,
    signing_key: SigningKeyDep,
    settings: SettingsDep,
    ip: ClientIP,
    who: ActorDep,
) -> SignInContext:
    return SignInContext(
        session, hasher, throttle, signing_key, settings, ip, who, request.headers.get("user-agent")
    )


SignInDep = Annotated[SignInContext, Depends(_sign_in_context)]
