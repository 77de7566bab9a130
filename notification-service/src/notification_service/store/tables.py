"""Tables: notifications per (event, channel) and their attempts; merchant webhook endpoints,
deliveries and attempts; preferences, push subscriptions and message template versions."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from notification_service.domain.status import (
    NOTIFICATION_DUE,
    WEBHOOK_SCHEDULED,
    NotificationStatus,
    WebhookDeliveryStatus,
    sql_in,
)
from paygate_common.db import new_metadata
from paygate_common.idempotency import idempotency_table
from paygate_common.outbox import outbox_tables


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"


class Base(DeclarativeBase):
    metadata = new_metadata()


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (
        # A redelivered event that slipped past the inbox still yields one notification.
        UniqueConstraint("event_id", "channel", name="uq_notifications_event_id_channel"),
        CheckConstraint(
            f"status IN ({sql_in(NotificationStatus)})",
            name="status",
        ),
        Index("ix_notifications_user_created", "user_id", "created_at"),
        # The sender's claim query scans only rows that still need work.
        Index(
            "ix_notifications_due",
            "next_attempt_at",
            postgresql_where=text(f"status IN ({sql_in(NotificationStatus, NOTIFICATION_DUE)})"),
        ),
        Index(
            "ix_notifications_dead_lettered",
            "dead_lettered_at",
            postgresql_where=text(f"status = '{NotificationStatus.DEAD_LETTERED.value}'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    event_type: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    # None for a payment made without an order (POST /payments).
    order_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    payment_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    status: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(200))
    # Set from the user's contact at send time; the address of the last attempt.
    recipient: Mapped[str | None] = mapped_column(String(320))
    # The consumed envelope, kept whole: rendering reads its payload and the DLQ carries it.
    source_event: Mapped[dict[str, Any]] = mapped_column(JSONB)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dead_lettered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    replayed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    replay_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class DeliveryAttempt(Base):
    """Every send attempt with its outcome, so an operator can see why one was dead-lettered."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (
        UniqueConstraint("notification_id", "attempt_no", "replay_no", name="uq_delivery_attempt"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    notification_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("notifications.id", ondelete="CASCADE"), index=True
    )
    attempt_no: Mapped[int] = mapped_column(Integer)
    # Replays reset `attempts`; this keeps attempts of different rounds apart.
    replay_no: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[str] = mapped_column(String(16))  # sent | failed
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class WebhookEndpoint(Base):
    """A merchant's one webhook endpoint; its signing secrets only ever sealed (AES-GCM)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)
    url: Mapped[str] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # None = every event type; otherwise the list the merchant chose.
    enabled_events: Mapped[list[str] | None] = mapped_column(JSONB)
    secret_key_id: Mapped[str] = mapped_column(String(64))
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    # The secret before the last rotation, signing alongside until `previous_expires_at`.
    previous_key_id: Mapped[str | None] = mapped_column(String(64))
    previous_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    previous_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class WebhookDelivery(Base):
    """One event for one endpoint; `id` is the Standard Webhooks message id (`webhook-id`)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_endpoint_event"),
        CheckConstraint(f"status IN ({sql_in(WebhookDeliveryStatus)})", name="status"),
        Index("ix_webhook_deliveries_user_created", "user_id", "created_at", "id"),
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text(
                f"status IN ({sql_in(WebhookDeliveryStatus, WEBHOOK_SCHEDULED)}) "
                "OR manual_retry_requested"
            ),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    event_type: Mapped[str] = mapped_column(String(64))
    # The body `{type, timestamp, data}` exactly as it is signed and sent on every attempt.
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Attempts on the retry schedule; manual retries are counted in `attempts` only.
    scheduled_attempts: Mapped[int] = mapped_column(Integer, default=0)
    manual_retry_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set while a sender holds the delivery; a claim whose lease ran out is taken again.
    leased_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_response_status: Mapped[int | None] = mapped_column(Integer)
    last_response_body: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    succeeded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class WebhookAttempt(Base):
    """Every POST of a delivery, whatever the outcome: status and the first bytes of the answer."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        UniqueConstraint("delivery_id", "attempt_no", name="uq_webhook_attempts_delivery_no"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    attempt_no: Mapped[int] = mapped_column(Integer)
    manual: Mapped[bool] = mapped_column(Boolean, default=False)
    url: Mapped[str] = mapped_column(Text)
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class NotificationPreference(Base):
    """Which channels a user wants; no row = the defaults (email and push on, SMS off)."""

    __tablename__ = "notification_preferences"

    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    email: Mapped[bool] = mapped_column(Boolean)
    sms: Mapped[bool] = mapped_column(Boolean)
    push: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PushSubscription(Base):
    """A browser's Web Push subscription (RFC 8030 endpoint, RFC 8291 keys)."""

    __tablename__ = "push_subscriptions"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    endpoint: Mapped[str] = mapped_column(Text, unique=True)
    p256dh: Mapped[str] = mapped_column(String(200))
    # The subscription's auth secret, sealed like every other secret at rest.
    auth_key_id: Mapped[str] = mapped_column(String(64))
    auth_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class MessageTemplate(Base):
    """One saved version of an operator's template for (event type, channel); the newest wins."""

    __tablename__ = "message_templates"
    __table_args__ = (
        UniqueConstraint("event_type", "channel", "version", name="uq_message_templates_version"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_type: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)
    # {"subject": ..., "text": ..., "html": ..., "title": ...} as the channel needs.
    parts: Mapped[dict[str, str]] = mapped_column(JSONB)
    created_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


metadata = Base.metadata
# The shared outbox (notification.dlq goes out through it) and the consumer's inbox.
outbox, inbox = outbox_tables(metadata)
# Idempotency-Key replays of the mutating endpoints whose answers hold no secret.
idempotency_keys = idempotency_table(metadata)
