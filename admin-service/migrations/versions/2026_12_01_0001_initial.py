"""Initial admin-service schema: configuration versions (insert-only) and the outbox.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from paygate_common.outbox import create_outbox_tables, drop_outbox_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "config_versions",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("value", postgresql.JSONB(), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("rolled_back_to", sa.Integer(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("key", "version", name="pk_config_versions"),
        sa.CheckConstraint("version > 0", name="ck_config_versions_version_positive"),
    )
    # A version, once written, is history: changes and rollbacks are new versions.
    op.execute(
        """
        CREATE FUNCTION config_versions_insert_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          RAISE EXCEPTION 'config_versions is insert-only (% refused)', TG_OP;
        END $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER config_versions_insert_only BEFORE UPDATE OR DELETE ON config_versions
          FOR EACH ROW EXECUTE FUNCTION config_versions_insert_only()
        """
    )
    create_outbox_tables(op)


def downgrade() -> None:
    drop_outbox_tables(op)
    op.execute("DROP TRIGGER IF EXISTS config_versions_insert_only ON config_versions")
    op.execute("DROP FUNCTION IF EXISTS config_versions_insert_only()")
    op.drop_table("config_versions")
