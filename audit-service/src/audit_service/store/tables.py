"""Tables of the `audit` schema: the hash-chained records, signed checkpoints and archive manifests."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Index, Table, Text, Uuid
from sqlalchemy.dialects.postgresql import JSONB

from paygate_common.db import new_metadata
from paygate_common.outbox import outbox_tables

metadata = new_metadata()

# Insert-only (a trigger refuses UPDATE, DELETE and TRUNCATE; the service role lacks them too).
# `hash = SHA-256(prev_hash || canonical JSON of every other column)`; `seq` is gapless.
audit_records = Table(
    "audit_records",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("id", Uuid, nullable=False, unique=True),
    Column("event_id", Uuid, nullable=False, unique=True),
    Column("event_type", Text, nullable=False),
    Column("producer", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("action", Text, nullable=False),
    Column("outcome", Text, nullable=True),
    Column("actor_id", Text, nullable=True),
    Column("actor_role", Text, nullable=True),
    Column("entity_type", Text, nullable=False),
    Column("entity_id", Text, nullable=True),
    # The envelope's aggregate (the Kafka key): a payment event's order, a refund's payment.
    Column("aggregate_id", Text, nullable=True),
    Column("source_ip", Text, nullable=True),
    Column("request_id", Text, nullable=True),
    Column("details", JSONB, nullable=False),
    Column("prev_hash", Text, nullable=False),
    Column("hash", Text, nullable=False),
    Index("ix_audit_records_action_seq", "action", "seq"),
    Index("ix_audit_records_actor_seq", "actor_id", "seq"),
    Index("ix_audit_records_entity_seq", "entity_type", "entity_id", "seq"),
    Index("ix_audit_records_aggregate_seq", "aggregate_id", "seq"),
    Index("ix_audit_records_request_id", "request_id"),
    Index("ix_audit_records_occurred_at", "occurred_at"),
)

# HMAC-signed `(record_count, head_seq, head_hash)`: deleting the chain's tail is detected.
audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("record_count", BigInteger, nullable=False),
    Column("head_seq", BigInteger, nullable=False),
    Column("head_hash", Text, nullable=False),
    Column("signature", Text, nullable=False),
)

# One exported range of old records: where the file is, its digest, the chain links at both
# ends, signed like a checkpoint. The records stay in `audit_records` (never silently deleted).
audit_archives = Table(
    "audit_archives",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("from_seq", BigInteger, nullable=False),
    Column("to_seq", BigInteger, nullable=False),
    Column("record_count", BigInteger, nullable=False),
    Column("first_prev_hash", Text, nullable=False),
    Column("last_hash", Text, nullable=False),
    Column("location", Text, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("signature", Text, nullable=False),
)

outbox, inbox = outbox_tables(metadata)

INSERT_ONLY_TABLES = ("audit_records", "audit_checkpoints", "audit_archives")
