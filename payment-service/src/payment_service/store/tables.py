"""Tables of the `payments` schema: payments, their provider attempts, seen webhooks, sandbox charges."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from paygate_common.db import new_metadata
from paygate_common.outbox import outbox_tables

metadata = new_metadata()
outbox, inbox = outbox_tables(metadata)

PAYMENT_STATES = (
    "created",
    "processing",
    "pending",
    "requires_action",
    "succeeded",
    "failed",
    "cancelled",
)
ATTEMPT_STATES = (
    "in_flight",
    "pending",
    "requires_action",
    "succeeded",
    "failed",
    "cancelled",
    # The provider call ended without a known outcome (network error, 5xx, crash).
    "unknown",
    # Reconciliation found no PaymentIntent for it: it never reached the provider.
    "abandoned",
)


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


payments = Table(
    "payments",
    metadata,
    Column("id", Uuid, primary_key=True),
    # One payment per order: a redelivered order.create can never create a second one.
    Column("order_id", Uuid, nullable=False, unique=True),
    Column("user_id", Uuid, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("description", Text, nullable=True),
    Column("payment_method_id", Uuid, nullable=True),
    Column("provider", String(32), nullable=False),
    Column("provider_reference", String(255), nullable=True),
    Column("status", String(32), nullable=False, server_default=text("'created'")),
    Column("failure_code", String(64), nullable=True),
    Column("decline_code", String(64), nullable=True),
    Column("failure_message", Text, nullable=True),
    Column("next_action", JSONB, nullable=True),
    Column("attempt_count", Integer, nullable=False, server_default=text("0")),
    # An earlier attempt ended without a known outcome: ask the provider before charging again.
    Column("needs_reconcile", Boolean, nullable=False, server_default=text("false")),
    Column("cancel_requested", Boolean, nullable=False, server_default=text("false")),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("lease_until", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # The order request's id, so the charge's logs and payment.event follow the same thread.
    Column("correlation_id", String(128), nullable=True),
    CheckConstraint(f"status IN ({_in(PAYMENT_STATES)})", name="status"),
    CheckConstraint("amount > 0", name="amount_positive"),
)
Index(
    "ix_payments_due",
    payments.c.next_attempt_at,
    postgresql_where=text("status = 'created'"),
)
Index("ix_payments_provider_reference", payments.c.provider_reference)
Index("ix_payments_user_id", payments.c.user_id)

payment_attempts = Table(
    "payment_attempts",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("payment_id", Uuid, ForeignKey("payments.id"), nullable=False),
    Column("attempt_no", Integer, nullable=False),
    Column("idempotency_key", String(128), nullable=False, unique=True),
    Column("status", String(32), nullable=False, server_default=text("'in_flight'")),
    Column("provider_reference", String(255), nullable=True),
    Column("failure_code", String(64), nullable=True),
    Column("failure_message", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("payment_id", "attempt_no", name="uq_payment_attempts_payment_id_attempt_no"),
    CheckConstraint(f"status IN ({_in(ATTEMPT_STATES)})", name="status"),
)
Index(
    "ix_payment_attempts_in_flight",
    payment_attempts.c.started_at,
    postgresql_where=text("status = 'in_flight'"),
)

webhook_events = Table(
    "webhook_events",
    metadata,
    # The provider's event id: a redelivered webhook is recognised and dropped.
    Column("event_id", String(255), primary_key=True),
    Column("provider", String(32), nullable=False),
    Column("event_type", String(128), nullable=False),
    Column("payment_id", Uuid, nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# The sandbox connector's "provider side": what it charged, written in its own transaction as a
# real provider would, so chaos tests can count charges per payment.
sandbox_charges = Table(
    "sandbox_charges",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("payment_id", Uuid, nullable=False, index=True),
    Column("order_id", Uuid, nullable=False),
    Column("attempt_no", Integer, nullable=False),
    Column("idempotency_key", String(128), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(32), nullable=False),
    Column("body", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
