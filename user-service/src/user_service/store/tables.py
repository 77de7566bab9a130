"""Tables of the `users` schema: accounts, sign-in sessions, API keys, saved payment methods."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from paygate_common.db import new_metadata
from paygate_common.outbox import outbox_tables


class UserServiceBase(DeclarativeBase):
    """Own metadata, so another service's `outbox` or `users` table never collides with ours."""

    metadata = new_metadata()


class User(UserServiceBase):
    __tablename__ = "users"
    __table_args__ = (
        # Emails are stored normalised; the check keeps a stray write from defeating uniqueness.
        UniqueConstraint("email", name="uq_users_email"),
        CheckConstraint("email = lower(email)", name="email_normalised"),
        CheckConstraint("role IN ('customer', 'merchant', 'admin')", name="role_known"),
        CheckConstraint(r"phone ~ '^\+[1-9][0-9]{1,14}$'", name="phone_e164"),
        Index("ix_users_created_at", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(320))
    full_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), server_default="customer")
    password_hash: Mapped[str] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(String(16), default=None)
    disabled: Mapped[bool] = mapped_column(Boolean, server_default="false", default=False)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    def __repr__(self) -> str:  # keep the hash out of tracebacks and debug logs
        return f"User(id={self.id!s}, role={self.role!r})"


class PaymentMethod(UserServiceBase):
    """A provider's reusable payment method; never a card number or CVC."""

    __tablename__ = "payment_methods"
    __table_args__ = (
        UniqueConstraint(
            "provider", "provider_payment_method_id", name="uq_payment_methods_provider_token"
        ),
        CheckConstraint("provider IN ('stripe')", name="provider_known"),
        CheckConstraint("exp_month BETWEEN 1 AND 12", name="exp_month_range"),
        # One default per user, enforced by the database rather than by read-then-write code.
        Index(
            "uq_payment_methods_one_default",
            "user_id",
            unique=True,
            postgresql_where=text("is_default"),
        ),
        Index("ix_payment_methods_user_id", "user_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE")
    )
    provider: Mapped[str] = mapped_column(String(32))
    provider_payment_method_id: Mapped[str] = mapped_column(String(255))
    brand: Mapped[str] = mapped_column(String(32))
    last4: Mapped[str] = mapped_column(String(4))
    exp_month: Mapped[int] = mapped_column(SmallInteger)
    exp_year: Mapped[int] = mapped_column(SmallInteger)
    is_default: Mapped[bool] = mapped_column(Boolean, server_default="false")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AuthSession(UserServiceBase):
    """One sign-in: lives while its refresh tokens rotate, dies when revoked or too old."""

    __tablename__ = "auth_sessions"
    __table_args__ = (Index("ix_auth_sessions_user_id", "user_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE")
    )
    user_agent: Mapped[str | None] = mapped_column(String(512), default=None)
    ip: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_used_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # Absolute end: rotation keeps a session alive up to here, never beyond.
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    revoked_reason: Mapped[str | None] = mapped_column(String(32), default=None)


class RefreshToken(UserServiceBase):
    """A refresh token of a session, by SHA-256 of its value; spent once it was rotated."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (
        UniqueConstraint("token_hash", name="uq_refresh_tokens_token_hash"),
        Index("ix_refresh_tokens_session_id", "session_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    session_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("auth_sessions.id", ondelete="CASCADE")
    )
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    spent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class ApiKey(UserServiceBase):
    """A merchant API key: only its lookup id and an HMAC-SHA256 of the whole key are kept."""

    __tablename__ = "api_keys"
    __table_args__ = (
        UniqueConstraint("lookup_id", name="uq_api_keys_lookup_id"),
        CheckConstraint("environment IN ('live', 'test')", name="environment_known"),
        Index("ix_api_keys_user_id", "user_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(100))
    environment: Mapped[str] = mapped_column(String(4))
    lookup_id: Mapped[str] = mapped_column(String(12))
    key_hash: Mapped[str] = mapped_column(String(64))
    # None: the owner's full rights; a list narrows the key to those scopes.
    scopes: Mapped[list[str] | None] = mapped_column(ARRAY(String(64)), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)

    def __repr__(self) -> str:  # the hash stays out of tracebacks
        return f"ApiKey(id={self.id!s}, lookup_id={self.lookup_id!r})"


metadata = UserServiceBase.metadata
# The transactional outbox (user.registered) and inbox live next to the accounts they describe.
outbox, inbox = outbox_tables(metadata)
