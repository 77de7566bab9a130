"""Abandoned redirects: when to ask a provider again about a payment still waiting for its payer.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "payments",
        sa.Column("action_checks", sa.Integer, nullable=False, server_default=sa.text("0")),
    )
    op.create_index(
        "ix_payments_requires_action",
        "payments",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'requires_action'"),
    )


def downgrade() -> None:
    op.drop_index("ix_payments_requires_action", table_name="payments")
    op.drop_column("payments", "action_checks")
