"""The provider's customer of the saved method to charge, from `order.create` (no user-service call).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("payments", sa.Column("provider_customer_id", sa.String(255), nullable=True))


def downgrade() -> None:
    op.drop_column("payments", "provider_customer_id")
