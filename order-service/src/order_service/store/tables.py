"""Tables of the `orders` schema: orders, plus the shared outbox, inbox and idempotency keys."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    String,
    Table,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from paygate_common.db import new_metadata
from paygate_common.idempotency import idempotency_table
from paygate_common.outbox import outbox_tables

metadata = new_metadata()

ORDER_STATUSES = ("pending", "paid", "failed", "requires_action", "cancelled", "refunded")

orders = Table(
    "orders",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("description", Text, nullable=True),
    Column("payment_method_id", Uuid, nullable=True),
    Column("status", String(32), nullable=False, server_default=text("'pending'")),
    Column("cancel_reason", Text, nullable=True),
    # Summary of the latest payment.event that moved (or refreshed) the order.
    Column("payment_id", Uuid, nullable=True),
    Column("payment_provider", String(32), nullable=True),
    Column("failure_code", String(100), nullable=True),
    Column("failure_message", Text, nullable=True),
    Column("next_action", JSONB, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("amount > 0", name="amount_positive"),
    CheckConstraint(
        "status IN (" + ", ".join(f"'{s}'" for s in ORDER_STATUSES) + ")", name="status_known"
    ),
    # "My orders, newest first" is a keyset walk over this index.
    Index("ix_orders_user_created", "user_id", text("created_at DESC"), text("id DESC")),
    # The sweeper reads only pending orders, oldest first.
    Index(
        "ix_orders_pending_created",
        "created_at",
        postgresql_where=text("status = 'pending'"),
    ),
)

outbox, inbox = outbox_tables(metadata)
idempotency_keys = idempotency_table(metadata)
