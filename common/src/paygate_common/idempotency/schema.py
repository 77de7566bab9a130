"""The `idempotency_keys` table: for a service's metadata and its alembic migration."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

from paygate_common.db import new_metadata
from paygate_common.idempotency.keys import MAX_KEY_LENGTH

TABLE_NAME = "idempotency_keys"
STATE_IN_PROGRESS = "in_progress"
STATE_COMPLETED = "completed"


def idempotency_table(metadata: MetaData) -> Table:
    """Add (or return) the `idempotency_keys` table in a service's metadata."""
    existing = metadata.tables.get(TABLE_NAME)
    if existing is not None:
        return existing
    return Table(TABLE_NAME, metadata, *_columns(), *_constraints())


def _columns() -> list[Column[Any]]:
    return [
        # caller + endpoint, e.g. "user:<uuid>|POST /orders"
        Column("scope", String(300), nullable=False),
        Column("key", String(MAX_KEY_LENGTH), nullable=False),
        Column("request_hash", String(64), nullable=False),
        Column("state", String(16), nullable=False),
        Column("claim_token", String(32), nullable=False),
        Column("status_code", Integer, nullable=True),
        Column("response_body", JSONB, nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("locked_until", DateTime(timezone=True), nullable=False),
        Column("expires_at", DateTime(timezone=True), nullable=False),
    ]


def _constraints() -> list[Any]:
    return [
        PrimaryKeyConstraint("scope", "key", name=f"pk_{TABLE_NAME}"),
        Index(f"ix_{TABLE_NAME}_expires_at", "expires_at"),
    ]


def create_idempotency_table(op: Any) -> None:
    """For a service's alembic migration: `create_idempotency_table(op)`."""
    op.create_table(TABLE_NAME, *_columns(), *_constraints())


def drop_idempotency_table(op: Any) -> None:
    op.drop_table(TABLE_NAME)


# A private metadata so the functions below work whatever metadata the service declared.
_TABLE = idempotency_table(new_metadata())
