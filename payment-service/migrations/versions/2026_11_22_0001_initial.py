"""Initial payments schema: payments, attempts, webhook events, sandbox charges, outbox and inbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from paygate_common.outbox import create_outbox_tables, drop_outbox_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PAYMENT_STATES = (
    "'created', 'processing', 'pending', 'requires_action', 'succeeded', 'failed', 'cancelled'"
)
ATTEMPT_STATES = "'in_flight', 'pending', 'requires_action', 'succeeded', 'failed', 'cancelled', 'unknown', 'abandoned'"


def _ts(name: str, nullable: bool = False, default: bool = True) -> sa.Column:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=sa.func.now() if default else None,
    )


def upgrade() -> None:
    op.create_table(
        "payments",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("order_id", sa.Uuid, nullable=False),
        sa.Column("user_id", sa.Uuid, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("payment_method_id", sa.Uuid, nullable=True),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("provider_reference", sa.String(255), nullable=True),
        sa.Column("status", sa.String(32), nullable=False, server_default=sa.text("'created'")),
        sa.Column("failure_code", sa.String(64), nullable=True),
        sa.Column("decline_code", sa.String(64), nullable=True),
        sa.Column("failure_message", sa.Text, nullable=True),
        sa.Column("next_action", JSONB, nullable=True),
        sa.Column("attempt_count", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("needs_reconcile", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.text("false")),
        _ts("next_attempt_at"),
        _ts("lease_until", nullable=True, default=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.UniqueConstraint("order_id", name="uq_payments_order_id"),
        sa.CheckConstraint(f"status IN ({PAYMENT_STATES})", name="ck_payments_status"),
        sa.CheckConstraint("amount > 0", name="ck_payments_amount_positive"),
    )
    op.create_index(
        "ix_payments_due",
        "payments",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'created'"),
    )
    op.create_index("ix_payments_provider_reference", "payments", ["provider_reference"])
    op.create_index("ix_payments_user_id", "payments", ["user_id"])

    op.create_table(
        "payment_attempts",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column(
            "payment_id",
            sa.Uuid,
            sa.ForeignKey("payments.id", name="fk_payment_attempts_payment_id_payments"),
            nullable=False,
        ),
        sa.Column("attempt_no", sa.Integer, nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("status", sa.String(32), nullable=False, server_default=sa.text("'in_flight'")),
        sa.Column("provider_reference", sa.String(255), nullable=True),
        sa.Column("failure_code", sa.String(64), nullable=True),
        sa.Column("failure_message", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        _ts("started_at"),
        _ts("finished_at", nullable=True, default=False),
        sa.UniqueConstraint("idempotency_key", name="uq_payment_attempts_idempotency_key"),
        sa.UniqueConstraint(
            "payment_id", "attempt_no", name="uq_payment_attempts_payment_id_attempt_no"
        ),
        sa.CheckConstraint(f"status IN ({ATTEMPT_STATES})", name="ck_payment_attempts_status"),
    )
    op.create_index(
        "ix_payment_attempts_in_flight",
        "payment_attempts",
        ["started_at"],
        postgresql_where=sa.text("status = 'in_flight'"),
    )

    op.create_table(
        "webhook_events",
        sa.Column("event_id", sa.String(255), primary_key=True),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("event_type", sa.String(128), nullable=False),
        sa.Column("payment_id", sa.Uuid, nullable=True),
        _ts("received_at"),
    )

    op.create_table(
        "sandbox_charges",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("payment_id", sa.Uuid, nullable=False),
        sa.Column("order_id", sa.Uuid, nullable=False),
        sa.Column("attempt_no", sa.Integer, nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("body", JSONB, nullable=False),
        _ts("created_at"),
    )
    op.create_index("ix_sandbox_charges_payment_id", "sandbox_charges", ["payment_id"])

    create_outbox_tables(op)


def downgrade() -> None:
    drop_outbox_tables(op)
    op.drop_table("sandbox_charges")
    op.drop_table("webhook_events")
    op.drop_table("payment_attempts")
    op.drop_table("payments")
