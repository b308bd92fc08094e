"""Named leases (``leases``): which replica runs a singleton duty, until when by the database clock."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_lease"
down_revision = "0007_token_grant"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(256), nullable=False),
        sa.Column("epoch", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("leases")
