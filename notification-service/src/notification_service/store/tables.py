"""Tables: one row per (source event, channel) and one row per delivery attempt."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from paygate_common.db import new_metadata
from paygate_common.outbox import outbox_tables


class NotificationStatus(StrEnum):
    """queued → sending → sent; a failed attempt → failed (retried when due) → … → dead_lettered."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    DEAD_LETTERED = "dead_lettered"


class Channel(StrEnum):
    EMAIL = "email"


class Base(DeclarativeBase):
    metadata = new_metadata()


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (
        # A redelivered event that slipped past the inbox still yields one notification.
        UniqueConstraint("event_id", "channel", name="uq_notifications_event_id_channel"),
        CheckConstraint(
            "status IN ('queued', 'sending', 'sent', 'failed', 'dead_lettered')",
            name="status",
        ),
        Index("ix_notifications_user_created", "user_id", "created_at"),
        # The sender's claim query scans only rows that still need work.
        Index(
            "ix_notifications_due",
            "next_attempt_at",
            postgresql_where=text("status IN ('queued', 'failed', 'sending')"),
        ),
        Index(
            "ix_notifications_dead_lettered",
            "dead_lettered_at",
            postgresql_where=text("status = 'dead_lettered'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    event_type: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    order_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
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


metadata = Base.metadata
# The shared outbox (notification.dlq goes out through it) and the consumer's inbox.
outbox, inbox = outbox_tables(metadata)
