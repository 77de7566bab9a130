"""Payments API: direct payments, manual capture, void, refunds; running amounts; idempotency keys.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from paygate_common.idempotency import create_idempotency_table, drop_idempotency_table

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_PAYMENT_STATES = (
    "'created', 'processing', 'pending', 'requires_action', 'succeeded', 'failed', 'cancelled'"
)
PAYMENT_STATES = (
    "'created', 'processing', 'pending', 'requires_action', 'requires_capture', 'capturing', "
    "'cancelling', 'succeeded', 'failed', 'cancelled', 'partially_refunded', 'refunded'"
)
OLD_ATTEMPT_STATES = "'in_flight', 'pending', 'requires_action', 'succeeded', 'failed', 'cancelled', 'unknown', 'abandoned'"
ATTEMPT_STATES = (
    "'in_flight', 'pending', 'requires_action', 'requires_capture', 'succeeded', 'failed', "
    "'cancelled', 'unknown', 'abandoned'"
)


def _ts(name: str, nullable: bool = False, default: bool = True) -> sa.Column:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=sa.func.now() if default else None,
    )


def _money(name: str) -> sa.Column:
    return sa.Column(name, sa.BigInteger, nullable=False, server_default=sa.text("0"))


def upgrade() -> None:
    op.alter_column("payments", "order_id", nullable=True)
    op.add_column(
        "payments",
        sa.Column(
            "capture_method", sa.String(16), nullable=False, server_default=sa.text("'automatic'")
        ),
    )
    for name in (
        "amount_capturable",
        "amount_captured",
        "amount_refunded",
        "amount_refund_pending",
    ):
        op.add_column("payments", _money(name))
    op.add_column("payments", sa.Column("metadata", JSONB, nullable=True))
    op.add_column("payments", sa.Column("return_url", sa.Text, nullable=True))
    op.add_column("payments", sa.Column("payment_method_token", sa.String(255), nullable=True))
    op.add_column("payments", _ts("capture_before", nullable=True, default=False))
    # Payments that succeeded before this revision captured their whole amount.
    op.execute("UPDATE payments SET amount_captured = amount WHERE status = 'succeeded'")
    op.drop_constraint("ck_payments_status", "payments", type_="check")
    op.create_check_constraint("ck_payments_status", "payments", f"status IN ({PAYMENT_STATES})")
    op.create_check_constraint(
        "ck_payments_amounts_consistent",
        "payments",
        "amount_captured <= amount AND amount_refunded + amount_refund_pending <= amount_captured",
    )
    op.create_index(
        "ix_payments_user_created",
        "payments",
        ["user_id", sa.text("created_at DESC"), sa.text("id DESC")],
    )
    op.create_index(
        "ix_payments_capture_before",
        "payments",
        ["capture_before"],
        postgresql_where=sa.text("status = 'requires_capture'"),
    )
    op.drop_constraint("ck_payment_attempts_status", "payment_attempts", type_="check")
    op.create_check_constraint(
        "ck_payment_attempts_status", "payment_attempts", f"status IN ({ATTEMPT_STATES})"
    )

    op.create_table(
        "refunds",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column(
            "payment_id",
            sa.Uuid,
            sa.ForeignKey("payments.id", name="fk_refunds_payment_id_payments"),
            nullable=False,
        ),
        sa.Column("user_id", sa.Uuid, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("status", sa.String(16), nullable=False, server_default=sa.text("'pending'")),
        sa.Column("source", sa.String(16), nullable=False, server_default=sa.text("'api'")),
        sa.Column("request_key", sa.String(128), nullable=True),
        sa.Column("provider_reference", sa.String(255), nullable=True),
        sa.Column("failure_code", sa.String(64), nullable=True),
        sa.Column("failure_message", sa.Text, nullable=True),
        sa.Column("correlation_id", sa.String(128), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.UniqueConstraint("request_key", name="uq_refunds_request_key"),
        sa.UniqueConstraint("provider_reference", name="uq_refunds_provider_reference"),
        sa.CheckConstraint(
            "status IN ('pending', 'succeeded', 'failed')", name="ck_refunds_status"
        ),
        sa.CheckConstraint("amount > 0", name="ck_refunds_amount_positive"),
    )
    op.create_index("ix_refunds_payment_id", "refunds", ["payment_id"])

    op.create_table(
        "payment_operations",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column(
            "payment_id",
            sa.Uuid,
            sa.ForeignKey("payments.id", name="fk_payment_operations_payment_id_payments"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("refund_id", sa.Uuid, nullable=True),
        sa.Column("amount", sa.BigInteger, nullable=True),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default=sa.text("'queued'")),
        sa.Column("from_status", sa.String(32), nullable=True),
        sa.Column("source", sa.String(16), nullable=False, server_default=sa.text("'api'")),
        sa.Column("attempt_count", sa.Integer, nullable=False, server_default=sa.text("0")),
        _ts("next_attempt_at"),
        _ts("lease_until", nullable=True, default=False),
        _ts("started_at", nullable=True, default=False),
        _ts("finished_at", nullable=True, default=False),
        sa.Column("provider_reference", sa.String(255), nullable=True),
        sa.Column("failure_code", sa.String(64), nullable=True),
        sa.Column("failure_message", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        _ts("created_at"),
        sa.UniqueConstraint("refund_id", name="uq_payment_operations_refund_id"),
        sa.UniqueConstraint("idempotency_key", name="uq_payment_operations_idempotency_key"),
        sa.CheckConstraint(
            "kind IN ('capture', 'void', 'refund')", name="ck_payment_operations_kind"
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'in_flight', 'unknown', 'succeeded', 'failed')",
            name="ck_payment_operations_status",
        ),
    )
    op.create_index(
        "ix_payment_operations_due",
        "payment_operations",
        ["next_attempt_at"],
        postgresql_where=sa.text("status IN ('queued', 'unknown')"),
    )
    op.create_index(
        "ix_payment_operations_in_flight",
        "payment_operations",
        ["started_at"],
        postgresql_where=sa.text("status = 'in_flight'"),
    )

    op.alter_column("sandbox_charges", "order_id", nullable=True)
    op.create_table(
        "sandbox_refunds",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("charge_id", sa.String(64), nullable=False),
        sa.Column("payment_id", sa.Uuid, nullable=False),
        sa.Column("refund_id", sa.Uuid, nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("body", JSONB, nullable=False),
        _ts("created_at"),
    )
    op.create_index("ix_sandbox_refunds_charge_id", "sandbox_refunds", ["charge_id"])
    op.create_index("ix_sandbox_refunds_refund_id", "sandbox_refunds", ["refund_id"])

    create_idempotency_table(op)


def downgrade() -> None:
    drop_idempotency_table(op)
    op.drop_table("sandbox_refunds")
    op.alter_column("sandbox_charges", "order_id", nullable=False)
    op.drop_table("payment_operations")
    op.drop_table("refunds")
    op.drop_constraint("ck_payment_attempts_status", "payment_attempts", type_="check")
    op.create_check_constraint(
        "ck_payment_attempts_status", "payment_attempts", f"status IN ({OLD_ATTEMPT_STATES})"
    )
    op.drop_index("ix_payments_capture_before", "payments")
    op.drop_index("ix_payments_user_created", "payments")
    op.drop_constraint("ck_payments_amounts_consistent", "payments", type_="check")
    op.drop_constraint("ck_payments_status", "payments", type_="check")
    op.create_check_constraint(
        "ck_payments_status", "payments", f"status IN ({OLD_PAYMENT_STATES})"
    )
    for name in (
        "capture_before",
        "payment_method_token",
        "return_url",
        "metadata",
        "amount_refund_pending",
        "amount_refunded",
        "amount_captured",
        "amount_capturable",
        "capture_method",
    ):
        op.drop_column("payments", name)
    op.alter_column("payments", "order_id", nullable=False)
