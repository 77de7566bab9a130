"""Initial exchange-rate-service schema: reference rates, feed status, FX quotes, outbox, idempotency keys.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from paygate_common.idempotency import create_idempotency_table, drop_idempotency_table
from paygate_common.outbox import create_outbox_tables, drop_outbox_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RATE = sa.Numeric(30, 12)


def upgrade() -> None:
    op.create_table(
        "reference_rates",
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("rate_date", sa.Date(), nullable=False),
        sa.Column("rate_per_eur", RATE, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("set_by", sa.Uuid(), nullable=True),
        sa.Column(
            "set_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("currency", "rate_date", name="pk_reference_rates"),
        sa.CheckConstraint("rate_per_eur > 0", name="ck_reference_rates_rate_positive"),
        sa.CheckConstraint("source IN ('ecb', 'operator')", name="ck_reference_rates_source_known"),
    )
    op.create_index("ix_reference_rates_source_date", "reference_rates", ["source", "rate_date"])
    op.create_table(
        "rate_feeds",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("latest_rate_date", sa.Date(), nullable=True),
        sa.Column("rows_loaded", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.PrimaryKeyConstraint("name", name="pk_rate_feeds"),
    )
    op.create_table(
        "fx_quotes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("from_currency", sa.String(3), nullable=False),
        sa.Column("to_currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("mid_rate", RATE, nullable=False),
        sa.Column("margin_bps", sa.Integer(), nullable=False),
        sa.Column("rate", RATE, nullable=False),
        sa.Column("converted_amount", sa.BigInteger(), nullable=False),
        sa.Column("rate_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default=sa.text("'open'")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("redeemed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("redeemed_by", sa.String(64), nullable=True),
        sa.Column("redemption_reference", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_fx_quotes"),
        sa.CheckConstraint("amount > 0", name="ck_fx_quotes_amount_positive"),
        sa.CheckConstraint("converted_amount > 0", name="ck_fx_quotes_converted_positive"),
        sa.CheckConstraint("status IN ('open', 'redeemed')", name="ck_fx_quotes_status_known"),
    )
    op.create_index(
        "ix_fx_quotes_user_created", "fx_quotes", ["user_id", sa.text("created_at DESC")]
    )
    create_outbox_tables(op)
    create_idempotency_table(op)


def downgrade() -> None:
    drop_idempotency_table(op)
    drop_outbox_tables(op)
    op.drop_index("ix_fx_quotes_user_created", table_name="fx_quotes")
    op.drop_table("fx_quotes")
    op.drop_table("rate_feeds")
    op.drop_index("ix_reference_rates_source_date", table_name="reference_rates")
    op.drop_table("reference_rates")
