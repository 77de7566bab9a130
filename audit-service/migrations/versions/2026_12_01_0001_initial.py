"""Initial audit schema: insert-only hash-chained records, checkpoints, archives, the writer role.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from audit_service.settings import Settings
from paygate_common.outbox import create_outbox_tables, drop_outbox_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INSERT_ONLY = ("audit_records", "audit_checkpoints", "audit_archives")


def _ts(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "audit_records",
        sa.Column("seq", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("producer", sa.Text(), nullable=False),
        _ts("occurred_at"),
        _ts("recorded_at"),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("actor_id", sa.Text(), nullable=True),
        sa.Column("actor_role", sa.Text(), nullable=True),
        sa.Column("entity_type", sa.Text(), nullable=False),
        sa.Column("entity_id", sa.Text(), nullable=True),
        sa.Column("aggregate_id", sa.Text(), nullable=True),
        sa.Column("source_ip", sa.Text(), nullable=True),
        sa.Column("request_id", sa.Text(), nullable=True),
        sa.Column("details", postgresql.JSONB(), nullable=False),
        sa.Column("prev_hash", sa.Text(), nullable=False),
        sa.Column("hash", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_records"),
        sa.UniqueConstraint("id", name="uq_audit_records_id"),
        sa.UniqueConstraint("event_id", name="uq_audit_records_event_id"),
        sa.CheckConstraint("seq > 0", name="ck_audit_records_seq_positive"),
    )
    for name, columns in (
        ("ix_audit_records_action_seq", ["action", "seq"]),
        ("ix_audit_records_actor_seq", ["actor_id", "seq"]),
        ("ix_audit_records_entity_seq", ["entity_type", "entity_id", "seq"]),
        ("ix_audit_records_aggregate_seq", ["aggregate_id", "seq"]),
        ("ix_audit_records_request_id", ["request_id"]),
        ("ix_audit_records_occurred_at", ["occurred_at"]),
    ):
        op.create_index(name, "audit_records", columns)

    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        _ts("created_at"),
        sa.Column("record_count", sa.BigInteger(), nullable=False),
        sa.Column("head_seq", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sa.Text(), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_checkpoints"),
    )
    op.create_table(
        "audit_archives",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        _ts("created_at"),
        sa.Column("from_seq", sa.BigInteger(), nullable=False),
        sa.Column("to_seq", sa.BigInteger(), nullable=False),
        sa.Column("record_count", sa.BigInteger(), nullable=False),
        sa.Column("first_prev_hash", sa.Text(), nullable=False),
        sa.Column("last_hash", sa.Text(), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_archives"),
        sa.CheckConstraint("to_seq >= from_seq", name="ck_audit_archives_range"),
    )
    create_outbox_tables(op)

    # History is append-only for everyone, the owner included, unless a superuser disables
    # the triggers on purpose (which verify then exposes through the hash chain).
    op.execute(
        """
        CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          RAISE EXCEPTION 'audit tables are insert-only: % on % refused', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
        END $$
        """
    )
    for table in INSERT_ONLY:
        op.execute(
            f"CREATE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
        )

    # The role the service acts as: it may read and append, never change or remove. Roles are
    # cluster-wide, so another database's migration may have created it already.
    # The role name is checked by the settings pattern (an identifier), hence the plain substitution.
    role = Settings().db_role
    if role:
        op.execute(
            """
            DO $$ BEGIN
              IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
                CREATE ROLE {role} NOLOGIN;
              END IF;
            EXCEPTION
              WHEN duplicate_object OR unique_violation THEN NULL;
              WHEN insufficient_privilege THEN
                RAISE EXCEPTION 'create the role {role} (NOLOGIN) first: % may not create roles',
                  current_user;
            END $$
            """.replace("{role}", role)
        )
        op.execute(
            """
            DO $$ BEGIN
              IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
                EXECUTE format('GRANT {role} TO %I', current_user);
              END IF;
            END $$
            """.replace("{role}", role)
        )
        op.execute(f"GRANT USAGE ON SCHEMA {_schema()} TO {role}")
        for table in INSERT_ONLY:
            op.execute(f"REVOKE ALL ON {table} FROM PUBLIC, {role}")
            op.execute(f"GRANT SELECT, INSERT ON {table} TO {role}")
        op.execute(f"GRANT SELECT, INSERT, UPDATE ON inbox, outbox TO {role}")
        op.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {_schema()} TO {role}")


def _schema() -> str:
    return '"' + op.get_bind().execute(sa.text("SELECT current_schema()")).scalar_one() + '"'


def downgrade() -> None:
    role = Settings().db_role
    if role:
        op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {_schema()} FROM {role}")
        op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {_schema()} FROM {role}")
        op.execute(f"REVOKE USAGE ON SCHEMA {_schema()} FROM {role}")
    drop_outbox_tables(op)
    for table in INSERT_ONLY:
        op.drop_table(table)
    op.execute("DROP FUNCTION audit_refuse_change()")
