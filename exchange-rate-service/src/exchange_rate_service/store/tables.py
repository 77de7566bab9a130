"""Tables of the `rates` schema: reference rates, feed status, FX quotes, plus outbox and idempotency keys."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    Numeric,
    String,
    Table,
    Text,
    Uuid,
    func,
    text,
)

from paygate_common.db import new_metadata
from paygate_common.idempotency import idempotency_table
from paygate_common.outbox import outbox_tables

metadata = new_metadata()

RATE_SOURCES = ("ecb", "operator")
QUOTE_STATUSES = ("open", "redeemed")

# Units of a currency per one euro, as published (ECB: up to 6 significant digits) or set by an
# operator. NUMERIC, never a float: 1.1172 stays 1.1172.
RATE_TYPE = Numeric(30, 12)

reference_rates = Table(
    "reference_rates",
    metadata,
    Column("currency", String(3), primary_key=True),
    Column("rate_date", Date, primary_key=True),
    Column("rate_per_eur", RATE_TYPE, nullable=False),
    Column("source", String(16), nullable=False),
    # Operator rates only: who set it (user id) and when.
    Column("set_by", Uuid, nullable=True),
    Column("set_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("rate_per_eur > 0", name="rate_positive"),
    CheckConstraint("source IN ('ecb', 'operator')", name="source_known"),
    # "The ECB publication on or before D" is a backwards walk over this index.
    Index("ix_reference_rates_source_date", "source", "rate_date"),
)

# One row per source: the daily feed and the bundled history (loaded once).
rate_feeds = Table(
    "rate_feeds",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("url", Text, nullable=True),
    Column("last_attempt_at", DateTime(timezone=True), nullable=True),
    Column("last_success_at", DateTime(timezone=True), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("latest_rate_date", Date, nullable=True),
    Column("rows_loaded", Integer, nullable=False, server_default=text("0")),
)

fx_quotes = Table(
    "fx_quotes",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, nullable=False),
    Column("from_currency", String(3), nullable=False),
    Column("to_currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("mid_rate", RATE_TYPE, nullable=False),
    Column("margin_bps", Integer, nullable=False),
    Column("rate", RATE_TYPE, nullable=False),
    Column("converted_amount", BigInteger, nullable=False),
    Column("rate_date", Date, nullable=False),
    Column("status", String(16), nullable=False, server_default=text("'open'")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("redeemed_at", DateTime(timezone=True), nullable=True),
    Column("redeemed_by", String(64), nullable=True),
    Column("redemption_reference", String(255), nullable=True),
    CheckConstraint("amount > 0", name="amount_positive"),
    CheckConstraint("converted_amount > 0", name="converted_positive"),
    CheckConstraint("status IN ('open', 'redeemed')", name="status_known"),
    Index("ix_fx_quotes_user_created", "user_id", text("created_at DESC")),
)

outbox, inbox = outbox_tables(metadata)
idempotency_keys = idempotency_table(metadata)
