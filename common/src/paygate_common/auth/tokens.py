"""User access tokens: the `Principal` they carry, issuing (user-service) and verification."""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, Protocol, TypeVar

import jwt
from pydantic import BaseModel, ConfigDict

from paygate_common.auth.errors import TokenExpired, TokenInvalid, TokenMissing
from paygate_common.auth.jwks import JWKSCache
from paygate_common.auth.keys import ACCESS_TOKEN_ALGORITHM, SigningKey, new_jti

Role = Literal["customer", "merchant", "admin"]
ROLES: frozenset[str] = frozenset({"customer", "merchant", "admin"})

DEFAULT_ALGORITHMS: tuple[str, ...] = (ACCESS_TOKEN_ALGORITHM,)
DEFAULT_LEEWAY_SECONDS = 10
REQUIRED_CLAIMS = ("exp", "iss", "aud", "sub", "role")

KeyResolver = Callable[[str], Awaitable[Any]]


class Principal(BaseModel):
    """Who is calling, as proven by a verified access token."""

    model_config = ConfigDict(frozen=True)

    user_id: uuid.UUID
    role: Role
    email: str | None = None
    token_expires_at: int
    # Set when the token was minted for a merchant API key (user-service's resolve endpoint):
    # the key's id, and the scopes that narrow it (None = all of the owner's rights).
    api_key_id: uuid.UUID | None = None
    scopes: frozenset[str] | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def via_api_key(self) -> bool:
        return self.api_key_id is not None


class _Owned(Protocol):
    @property
    def user_id(self) -> uuid.UUID: ...


OwnedT = TypeVar("OwnedT", bound=_Owned)


def owned_or_raise(row: OwnedT | None, principal: Principal, not_found: Exception) -> OwnedT:
    """The row if the caller owns it (`row.user_id`) or is an admin; otherwise `not_found`.

    Someone else's order, quote or transaction answers exactly like a missing one (never 403),
    so an id's existence is not disclosed.
    """
    if row is None or (row.user_id != principal.user_id and not principal.is_admin):
        raise not_found
    return row


def issue_access_token(
    signing_key: SigningKey,
    *,
    user_id: uuid.UUID | str,
    role: Role,
    email: str | None,
    issuer: str,
    audience: str,
    ttl_seconds: int,
    now: int | None = None,
    extra_claims: Mapping[str, Any] | None = None,
) -> tuple[str, int]:
    """Sign an access token for a user; returns `(token, expires_in)`.

    `extra_claims` adds claims such as `sid` (the sign-in session), `api_key_id` and `scope`
    (space-separated, RFC 9068) for tokens minted for an API key; it cannot replace the
    registered ones.
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    issued_at = int(time.time()) if now is None else now
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": str(uuid.UUID(str(user_id))),
        "role": role,
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + ttl_seconds,
        "jti": new_jti(),
    }
    if email is not None:
        claims["email"] = email
    for name, value in (extra_claims or {}).items():
        claims.setdefault(name, value)
    return signing_key.sign(claims), ttl_seconds


def token_kid(token: str) -> str:
    """The `kid` from the token's header (unverified: only used to pick the key)."""
    if not token:
        raise TokenMissing("An access token is required")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenInvalid("The access token is malformed") from None
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenInvalid("The access token names no signing key")
    return kid


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    role = claims.get("role")
    if role not in ROLES:
        raise TokenInvalid("The access token carries an unknown role")
    try:
        user_id = uuid.UUID(str(claims["sub"]))
    except ValueError:
        raise TokenInvalid("The access token subject is not a user id") from None
    email = claims.get("email")
    api_key_id: uuid.UUID | None = None
    scopes: frozenset[str] | None = None
    if "api_key_id" in claims:
        try:
            api_key_id = uuid.UUID(str(claims["api_key_id"]))
        except ValueError:
            raise TokenInvalid("The access token names a malformed API key") from None
        scope = claims.get("scope")
        if scope is not None:
            if not isinstance(scope, str):
                raise TokenInvalid("The access token's scope is not a string")
            scopes = frozenset(scope.split())
    return Principal(
        user_id=user_id,
        role=role,
        email=email if isinstance(email, str) else None,
        token_expires_at=int(claims["exp"]),
        api_key_id=api_key_id,
        scopes=scopes,
    )


def verify_with_key(
    token: str,
    key: Any,
    *,
    issuer: str,
    audience: str,
    algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
    leeway: float = DEFAULT_LEEWAY_SECONDS,
) -> Principal:
    """Verify an access token against an already resolved key (synchronous; no I/O).

    The algorithm list is ours, never the token's: `alg: none` and an HS256 token "signed" with
    the public key are both refused before any key is used.
    """
    if not token:
        raise TokenMissing("An access token is required")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=list(algorithms),
            audience=audience,
            issuer=issuer,
            leeway=leeway,
            options={"require": list(REQUIRED_CLAIMS), "verify_signature": True},
        )
    except jwt.ExpiredSignatureError:
        raise TokenExpired("The access token has expired") from None
    except jwt.InvalidAudienceError:
        raise TokenInvalid("The access token is not meant for this API") from None
    except jwt.InvalidIssuerError:
        raise TokenInvalid("The access token has an unexpected issuer") from None
    except jwt.MissingRequiredClaimError as exc:
        raise TokenInvalid(f"The access token lacks the {exc.claim!r} claim") from None
    except (jwt.PyJWTError, ValueError, TypeError):
        raise TokenInvalid("The access token is not valid") from None
    return principal_from_claims(claims)


async def verify_access_token(
    token: str,
    *,
    jwks: JWKSCache | KeyResolver,
    issuer: str,
    audience: str,
    algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
    leeway: float = DEFAULT_LEEWAY_SECONDS,
) -> Principal:
    """Resolve the token's key by `kid` (fetching the JWKS if needed) and verify it."""
    kid = token_kid(token)
    resolve = jwks.get_key if isinstance(jwks, JWKSCache) else jwks
    key = await resolve(kid)
    return verify_with_key(
        token, key, issuer=issuer, audience=audience, algorithms=algorithms, leeway=leeway
    )


class VerifiedTokenCache:
    """Tokens already verified, each kept until its own `exp`, least recently used evicted first.

    Lets the gateway skip the RSA check for a token it has seen; the cache is per process and
    holds nothing a verified token does not already prove.
    """

    def __init__(self, maxsize: int = 10_000, *, clock: Callable[[], float] = time.time) -> None:
        self.maxsize = maxsize
        self._clock = clock
        self._entries: OrderedDict[str, Principal] = OrderedDict()

    def get(self, token: str) -> Principal | None:
        principal = self._entries.get(token)
        if principal is None:
            return None
        if principal.token_expires_at <= self._clock():
            del self._entries[token]
            return None
        self._entries.move_to_end(token)
        return principal

    def put(self, token: str, principal: Principal) -> None:
        if principal.token_expires_at <= self._clock():
            return
        self._entries[token] = principal
        self._entries.move_to_end(token)
        while len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
