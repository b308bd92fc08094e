"""Commitments of batch rows whose personal columns are sealed (subject column, ``pii: true`` columns)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_batch_subjects"
down_revision = "0011_screening"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batch_sealed_rows",
        sa.Column("batch_id", sa.String(16), primary_key=True),
        sa.Column("row", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("commitment", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("batch_sealed_rows")
