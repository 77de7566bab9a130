"""Request and response bodies; requests forbid unknown fields and coerce nothing."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from paygate_common.text import PersonName

# Policy (length, common passwords) is checked in the domain to give a specific reason; this
# bound only keeps absurd bodies away from Argon2.
PasswordField = Annotated[
    str, Field(min_length=1, max_length=1024, json_schema_extra={"format": "password"}, repr=False)
]
FullName = PersonName


def problem(description: str) -> dict[str, Any]:
    """An OpenAPI `responses` entry for a problem+json error with the given stable codes."""
    return {"description": description, "content": {"application/problem+json": {}}}


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SignupRequest(_Request):
    email: EmailStr = Field(max_length=320)
    password: PasswordField
    full_name: FullName


class SigninRequest(_Request):
    email: EmailStr = Field(max_length=320)
    password: PasswordField


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the token expires")


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    full_name: str
    role: Literal["customer", "admin"]
    created_at: datetime


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


class ChargeableMethod(BaseModel):
    """A saved method as payment-service needs it; `token` is the provider's PaymentMethod id."""

    id: uuid.UUID
    provider: Literal["stripe"]
    token: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


class PaymentContextRead(BaseModel):
    user_id: uuid.UUID
    email: str
    full_name: str
    provider_customer_id: str | None
    payment_method: ChargeableMethod | None


class ContactRead(BaseModel):
    user_id: uuid.UUID
    email: str
    full_name: str


class JWK(BaseModel):
    kid: str
    kty: Literal["RSA"]
    alg: Literal["RS256"]
    use: Literal["sig"]
    n: str
    e: str


class JWKSRead(BaseModel):
    keys: list[JWK]
