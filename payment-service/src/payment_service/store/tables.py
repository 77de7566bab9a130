"""Tables of the `payments` schema: payments, attempts, operations, refunds, webhooks, sandbox."""

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
from paygate_common.idempotency import idempotency_table
from paygate_common.outbox import outbox_tables

metadata = new_metadata()
outbox, inbox = outbox_tables(metadata)
idempotency_keys = idempotency_table(metadata)

# The stored states of `domain.states.PaymentState` (the migration repeats them).
PAYMENT_STATES = (
    "created",
    "processing",
    "pending",
    "requires_action",
    "requires_capture",
    "capturing",
    "cancelling",
    "succeeded",
    "failed",
    "cancelled",
    "partially_refunded",
    "refunded",
)
ATTEMPT_STATES = (
    "in_flight",
    "pending",
    "requires_action",
    "requires_capture",
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
    # NULL for a payment created directly (POST /payments).
    Column("order_id", Uuid, nullable=True, unique=True),
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
    Column("capture_method", String(16), nullable=False, server_default=text("'automatic'")),
    # Running amounts (minor units): what may still be captured, what was captured, what was
    # refunded, and what refunds in flight have reserved (never more than captured in total).
    Column("amount_capturable", BigInteger, nullable=False, server_default=text("0")),
    Column("amount_captured", BigInteger, nullable=False, server_default=text("0")),
    Column("amount_refunded", BigInteger, nullable=False, server_default=text("0")),
    Column("amount_refund_pending", BigInteger, nullable=False, server_default=text("0")),
    Column("metadata", JSONB, nullable=True),
    Column("return_url", Text, nullable=True),
    # A provider token given directly (POST /payments `payment_method: pm_…`), or the saved
    # method's that `order.create` carried; never card data.
    Column("payment_method_token", String(255), nullable=True),
    # The provider's customer the saved method is attached to (Stripe `cus_…`), from
    # `order.create` with the token: with both the executor needs no call to user-service.
    Column("provider_customer_id", String(255), nullable=True),
    # An uncaptured authorisation is voided after this (the expiry worker).
    Column("capture_before", DateTime(timezone=True), nullable=True),
    # Paid on the hosted checkout page: waits in requires_action for the customer's card.
    Column("checkout", Boolean, nullable=False, server_default=text("false")),
    # Provider look-ups of a payment waiting for its payer that found no answer (the abandoned-
    # redirect sweeper backs off on it); `next_attempt_at` says when to ask again.
    Column("action_checks", Integer, nullable=False, server_default=text("0")),
    CheckConstraint(f"status IN ({_in(PAYMENT_STATES)})", name="status"),
    CheckConstraint("amount > 0", name="amount_positive"),
    CheckConstraint(
        "amount_captured <= amount AND amount_refunded + amount_refund_pending <= amount_captured",
        name="amounts_consistent",
    ),
)
Index(
    "ix_payments_due",
    payments.c.next_attempt_at,
    postgresql_where=text("status = 'created'"),
)
Index(
    "ix_payments_requires_action",
    payments.c.next_attempt_at,
    postgresql_where=text("status = 'requires_action'"),
)
Index("ix_payments_provider_reference", payments.c.provider_reference)
Index("ix_payments_user_id", payments.c.user_id)
Index(
    "ix_payments_user_created",
    payments.c.user_id,
    payments.c.created_at.desc(),
    payments.c.id.desc(),
)
Index(
    "ix_payments_capture_before",
    payments.c.capture_before,
    postgresql_where=text("status = 'requires_capture'"),
)

OPERATION_KINDS = ("capture", "void", "refund")
OPERATION_STATES = ("queued", "in_flight", "unknown", "succeeded", "failed")

# A capture, void or refund to send to the provider: recorded (with its idempotency key) in
# the transaction that decided it, sent only after that commit, settled in another.
payment_operations = Table(
    "payment_operations",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("payment_id", Uuid, ForeignKey("payments.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("refund_id", Uuid, nullable=True, unique=True),
    Column("amount", BigInteger, nullable=True),
    Column("idempotency_key", String(128), nullable=False, unique=True),
    Column("status", String(16), nullable=False, server_default=text("'queued'")),
    # The payment's state before a capture or void, to return to if the provider refuses.
    Column("from_status", String(32), nullable=True),
    Column("source", String(16), nullable=False, server_default=text("'api'")),
    Column("attempt_count", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("lease_until", DateTime(timezone=True), nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("provider_reference", String(255), nullable=True),
    Column("failure_code", String(64), nullable=True),
    Column("failure_message", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint(f"kind IN ({_in(OPERATION_KINDS)})", name="kind"),
    CheckConstraint(f"status IN ({_in(OPERATION_STATES)})", name="status"),
)
Index(
    "ix_payment_operations_due",
    payment_operations.c.next_attempt_at,
    postgresql_where=text("status IN ('queued', 'unknown')"),
)
Index(
    "ix_payment_operations_in_flight",
    payment_operations.c.started_at,
    postgresql_where=text("status = 'in_flight'"),
)

REFUND_STATES = ("pending", "succeeded", "failed")

refunds = Table(
    "refunds",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("payment_id", Uuid, ForeignKey("payments.id"), nullable=False, index=True),
    Column("user_id", Uuid, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reason", Text, nullable=True),
    Column("status", String(16), nullable=False, server_default=text("'pending'")),
    # api (a merchant's request), order (order.refund_requested), cancellation (a charge that
    # won a race against its order's cancellation), provider (made outside us, seen by webhook)
    Column("source", String(16), nullable=False, server_default=text("'api'")),
    # Dedupes a consumed request (the order.refund_requested event id).
    Column("request_key", String(128), nullable=True, unique=True),
    Column("provider_reference", String(255), nullable=True, unique=True),
    Column("failure_code", String(64), nullable=True),
    Column("failure_message", Text, nullable=True),
    Column("correlation_id", String(128), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint(f"status IN ({_in(REFUND_STATES)})", name="status"),
    CheckConstraint("amount > 0", name="amount_positive"),
)

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
    Column("order_id", Uuid, nullable=True),
    Column("attempt_no", Integer, nullable=False),
    Column("idempotency_key", String(128), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(32), nullable=False),
    Column("body", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

sandbox_refunds = Table(
    "sandbox_refunds",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("charge_id", String(64), nullable=False, index=True),
    Column("payment_id", Uuid, nullable=False),
    Column("refund_id", Uuid, nullable=False, index=True),
    Column("idempotency_key", String(128), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("body", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
