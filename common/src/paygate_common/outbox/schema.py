"""The outbox and inbox tables: one definition for services' metadata and their migrations."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import conv
from sqlalchemy.sql.schema import SchemaItem

OUTBOX_TABLE = "outbox"
INBOX_TABLE = "inbox"
OUTBOX_STATES = ("pending", "published", "failed")
INBOX_OUTCOMES = ("applied", "dead_lettered")

_PENDING = text("state = 'pending'")


def _outbox_columns() -> list[SchemaItem]:
    # Fresh objects on every call: the same definition feeds MetaData and alembic's create_table.
    return [
        Column("id", BigInteger, autoincrement=True, nullable=False),
        Column("event_id", Uuid, nullable=False),
        Column("topic", Text, nullable=False),
        # The Kafka key (the aggregate id): one aggregate's events land on one partition, in order.
        Column("key", Text, nullable=True),
        Column("event_type", Text, nullable=False),
        Column("payload", JSONB, nullable=False),  # the whole envelope
        Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
        Column("state", Text, nullable=False, server_default=text("'pending'")),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Column("last_error", Text, nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        # Retry backoff: a row whose publish failed waits until then.
        Column("available_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True), nullable=True),
        PrimaryKeyConstraint("id", name=conv("pk_outbox")),
        UniqueConstraint("event_id", name=conv("uq_outbox_event_id")),
        CheckConstraint(
            "state IN ('pending', 'published', 'failed')", name=conv("ck_outbox_state")
        ),
    ]


def _inbox_columns() -> list[SchemaItem]:
    return [
        Column("consumer", Text, nullable=False),
        Column("event_id", Uuid, nullable=False),
        Column("outcome", Text, nullable=False, server_default=text("'applied'")),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("consumer", "event_id", name=conv("pk_inbox")),
        CheckConstraint("outcome IN ('applied', 'dead_lettered')", name=conv("ck_inbox_outcome")),
    ]


# (name, columns) of the partial indexes; the relay's claim query reads only pending rows.
_OUTBOX_INDEXES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ix_outbox_pending", ("id",)),
    ("ix_outbox_pending_key", ("key", "id")),
)


def outbox_tables(metadata: MetaData) -> tuple[Table, Table]:
    """Add the `outbox` and `inbox` tables to a service's metadata; returns (outbox, inbox)."""
    outbox = Table(OUTBOX_TABLE, metadata, *_outbox_columns())
    for name, columns in _OUTBOX_INDEXES:
        Index(conv(name), *(outbox.c[c] for c in columns), postgresql_where=_PENDING)
    inbox = Table(INBOX_TABLE, metadata, *_inbox_columns())
    return outbox, inbox


def create_outbox_tables(op: Any) -> None:
    """Create `outbox` and `inbox` from a service's first alembic migration (`upgrade()`)."""
    op.create_table(OUTBOX_TABLE, *_outbox_columns())
    for name, columns in _OUTBOX_INDEXES:
        op.create_index(name, OUTBOX_TABLE, list(columns), postgresql_where=_PENDING)
    op.create_table(INBOX_TABLE, *_inbox_columns())


def drop_outbox_tables(op: Any) -> None:
    """The `downgrade()` counterpart of `create_outbox_tables`."""
    op.drop_table(INBOX_TABLE)
    for name, _ in _OUTBOX_INDEXES:
        op.drop_index(name, table_name=OUTBOX_TABLE)
    op.drop_table(OUTBOX_TABLE)


# Schema-less twins for our own statements: the session's search_path picks the service schema.
_dml_metadata = MetaData()
outbox_table, inbox_table = outbox_tables(_dml_metadata)
