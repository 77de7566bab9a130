"""Tables of the `transactions` schema (the DDL, triggers and grants are in the migration)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Integer,
    String,
    Table,
    Text,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

from paygate_common.db import new_metadata
from paygate_common.outbox import outbox_tables

metadata = new_metadata()
outbox, inbox = outbox_tables(metadata)

# TigerBeetle-style account: posted totals kept by the line trigger, never written directly.
ledger_accounts = Table(
    "ledger_accounts",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("owner", Text, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("normal_balance", Text, nullable=False),
    Column("must_not_go_negative", Boolean, nullable=False),
    Column("debits_posted", BigInteger, nullable=False, server_default="0"),
    Column("credits_posted", BigInteger, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

journal_entries = Table(
    "journal_entries",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("event_id", Uuid, nullable=True, unique=True),
    Column("kind", Text, nullable=False),
    Column("payment_id", Uuid, nullable=True),
    Column("user_id", Uuid, nullable=True),
    Column("currency", String(3), nullable=True),
    # What the entry did to the payment, for analytics (the lines are the truth).
    Column("captured", BigInteger, nullable=False, server_default="0"),
    Column("refunded", BigInteger, nullable=False, server_default="0"),
    Column("fees", BigInteger, nullable=False, server_default="0"),
    Column("reverses_entry_id", BigInteger, nullable=True),
    Column("description", Text, nullable=True),
    Column("posted_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# amount > 0 is a debit, amount < 0 a credit; an entry's lines sum to zero per currency.
journal_lines = Table(
    "journal_lines",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("entry_id", BigInteger, nullable=False),
    Column("account_id", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
)

# One row per payment: what the ledger has applied for it, and what the user sees as history.
transactions = Table(
    "transactions",
    metadata,
    Column("id", Uuid, primary_key=True),  # the payment id
    Column("user_id", Uuid, nullable=False),
    Column("order_id", Uuid, nullable=True),
    Column("provider", Text, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("capture_method", Text, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("status", Text, nullable=False),
    Column("phase", Text, nullable=False),
    Column("amount_pending", BigInteger, nullable=False),
    Column("amount_captured", BigInteger, nullable=False),
    Column("amount_refunded", BigInteger, nullable=False),
    Column("fee", BigInteger, nullable=False),
    Column("fee_refunded", BigInteger, nullable=False),
    Column("fee_basis_points", Integer, nullable=True),
    Column("fee_fixed", BigInteger, nullable=True),
    Column("fee_returned_on_refund", Boolean, nullable=True),
    Column("reported_captured", BigInteger, nullable=False, server_default="0"),
    Column("reported_refunded", BigInteger, nullable=False, server_default="0"),
    # Bumped from a sequence on every change: the history cache key includes the user's max.
    Column("version", BigInteger, nullable=False),
    Column("last_event_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

refunds = Table(
    "refunds",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("payment_id", Uuid, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("status", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

limit_reservations = Table(
    "limit_reservations",
    metadata,
    Column("reference_id", Uuid, primary_key=True),  # the order id, or the payment id
    Column("user_id", Uuid, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("day", Date, nullable=False),
    Column("month", Date, nullable=False),
    Column("status", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Per user, currency and period: the sum of the active and consumed reservations in it.
limit_counters = Table(
    "limit_counters",
    metadata,
    Column("user_id", Uuid, primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("period", Text, primary_key=True),  # "day" | "month"
    Column("period_start", Date, primary_key=True),
    Column("reserved", BigInteger, nullable=False, server_default="0"),
)

# Configuration pushed by admin-service (`config.changed`): the newest version per key wins.
ledger_config = Table(
    "ledger_config",
    metadata,
    Column("key", Text, primary_key=True),
    Column("config_version", Integer, nullable=False),
    Column("value", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

__all__ = [
    "inbox",
    "journal_entries",
    "journal_lines",
    "ledger_accounts",
    "ledger_config",
    "limit_counters",
    "limit_reservations",
    "metadata",
    "outbox",
    "refunds",
    "transactions",
]
