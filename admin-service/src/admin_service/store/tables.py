"""The `admin` schema: every version of every configuration key, plus the outbox."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from paygate_common.db import new_metadata
from paygate_common.outbox import outbox_tables

metadata = new_metadata()

config_versions = sa.Table(
    "config_versions",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer(), primary_key=True),
    sa.Column("value", postgresql.JSONB(), nullable=False),
    sa.Column("actor_id", sa.Uuid(), nullable=True),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.Column("rolled_back_to", sa.Integer(), nullable=True),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.CheckConstraint("version > 0", name="ck_config_versions_version_positive"),
)

outbox, inbox = outbox_tables(metadata)
