"""Request and response bodies; requests forbid unknown fields and coerce nothing.

The `/internal/*` bodies are in `paygate_common.internal.users`: their callers parse with them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, model_validator
from pydantic.json_schema import SkipJsonSchema

from paygate_common.auth import API_KEY_SCOPES
from paygate_common.text import PersonName, SingleLineText
from user_service.domain.passwords import MAX_LENGTH, MIN_LENGTH

# Policy (length, common passwords) is checked in the domain to give a specific reason; this
# bound only keeps absurd bodies away from Argon2.
PasswordField = Annotated[
    str, Field(min_length=1, max_length=1024, json_schema_extra={"format": "password"}, repr=False)
]
# A new password: the document states the policy's length bounds (the domain enforces them, so
# a short one is answered `weak_password` with reason `too_short`, not a bare validation_error).
NewPasswordField = Annotated[
    str,
    Field(
        min_length=1,
        max_length=1024,
        description=(
            f"{MIN_LENGTH} to {MAX_LENGTH} characters; not the email address (or its local part),"
            " not one character repeated, not one of the most common passwords"
        ),
        json_schema_extra={"format": "password", "minLength": MIN_LENGTH, "maxLength": MAX_LENGTH},
        repr=False,
    ),
]
# email-validator (behind EmailStr) refuses the special-use domains of RFC 6761/7686/6762 and
# `.arpa`; the pattern says so in the document (the validator stays the authority).
_SPECIAL_USE_TLDS = ("arpa", "invalid", "local", "localhost", "onion", "test")
EMAIL_DOMAIN_PATTERN = (
    r"^[^@]+@(?:[^@]+\.)?(?!(?:"
    + "|".join("".join(f"[{c}{c.upper()}]" for c in tld) for tld in _SPECIAL_USE_TLDS)
    + r")$)[^@.]+$"
)
EmailAddress = Annotated[
    EmailStr,
    Field(
        max_length=320,
        description="An address on a deliverable domain: special-use names ("
        + ", ".join(f"`.{t}`" for t in _SPECIAL_USE_TLDS)
        + ") are refused",
        json_schema_extra={"pattern": EMAIL_DOMAIN_PATTERN},
    ),
]
FullName = PersonName
RoleName = Literal["customer", "merchant", "admin"]
# E.164: a plus, a country code that does not start with 0, at most 15 digits in all.
PhoneE164 = Annotated[
    str,
    Field(
        pattern=r"^\+[1-9][0-9]{1,14}$",
        description="E.164, for example `+14155550123`",
        examples=["+14155550123"],
    ),
]
# One line of visible text (the shared single-line rule, documented in the schema).
ApiKeyName = Annotated[SingleLineText, StringConstraints(min_length=1, max_length=100)]
ApiKeyScope = Literal[tuple(sorted(API_KEY_SCOPES))]  # type: ignore[valid-type]
OpaqueToken = Annotated[str, Field(min_length=1, max_length=256, repr=False)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SignupRequest(_Request):
    email: EmailAddress
    password: NewPasswordField
    full_name: FullName


class SigninRequest(_Request):
    email: EmailAddress
    password: PasswordField


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str = Field(
        description="Opaque; exchange it at `POST /auth/refresh` for a new pair (it is spent then)"
    )
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires")


class RefreshRequest(_Request):
    refresh_token: OpaqueToken


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    full_name: str
    phone: str | None
    role: RoleName
    created_at: datetime


class ProfileUpdate(_Request):
    """Only the fields sent change; `phone: null` removes the phone number."""

    # absent = unchanged; a name cannot be removed, so the schema does not offer null for it
    full_name: FullName | SkipJsonSchema[None] = None
    phone: PhoneE164 | None = None

    @model_validator(mode="after")
    def _full_name_not_null(self) -> ProfileUpdate:
        if "full_name" in self.model_fields_set and self.full_name is None:
            raise ValueError("full_name cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class SessionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_agent: str | None
    ip: str | None
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime


class SessionPage(BaseModel):
    items: list[SessionRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page")


class ApiKeyCreate(_Request):
    name: ApiKeyName
    scopes: list[ApiKeyScope] | None = Field(  # type: ignore[valid-type]
        default=None,
        max_length=len(API_KEY_SCOPES),
        description="Narrow the key (`payments:read`, `payments:write`, ...; write includes read)."
        " Omitted: the key acts with all of its owner's rights.",
    )


class ApiKeyRead(BaseModel):
    id: uuid.UUID
    name: str
    prefix: str = Field(description="`pgk_test_` or `pgk_live_` and the key's lookup id")
    scopes: list[str] | None
    created_at: datetime
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The secret key, shown this once; only a keyed hash is stored")


class ApiKeyPage(BaseModel):
    items: list[ApiKeyRead]
    next_cursor: str | None


class PaymentMethodCreate(_Request):
    provider: Literal["stripe"]
    token: str = Field(
        pattern=r"^pm_[A-Za-z0-9_]{1,250}$",
        description="A Stripe PaymentMethod id (`pm_...`) or a Stripe test token such as `pm_card_visa`",
        examples=["pm_card_visa"],
    )
    make_default: bool = False


class PaymentMethodRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    provider: Literal["stripe"]
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    is_default: bool
    created_at: datetime


class JWK(BaseModel):
    kid: str
    kty: Literal["RSA"]
    alg: Literal["RS256"]
    use: Literal["sig"]
    n: str
    e: str


class JWKSRead(BaseModel):
    keys: list[JWK]
