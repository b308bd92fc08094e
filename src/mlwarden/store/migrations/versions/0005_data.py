"""Trusted data: a dataset's label column and contract, and ingested batches (accepted or quarantined)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_data"
down_revision = "0004_governance"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dataset_versions") as batch:
        batch.add_column(sa.Column("label", sa.String(128), nullable=True))
        batch.add_column(sa.Column("contract", sa.Text, nullable=True))
        batch.add_column(sa.Column("lineage", sa.Text, nullable=True))
    op.create_table(
        "batches",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("dataset", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("filename", sa.String(256), nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("reasons", sa.Text, nullable=False),
        sa.Column("flagged", sa.Text, nullable=False),
        sa.Column("ingested_by", sa.String(512), nullable=False),
        sa.Column("created", sa.String(32), nullable=False),
        sa.Column("released_by", sa.String(512), nullable=True),
        sa.Column("release_reason", sa.Text, nullable=True),
        sa.Column("dataset_version", sa.Integer, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("batches")
    with op.batch_alter_table("dataset_versions") as batch:
        batch.drop_column("lineage")
        batch.drop_column("contract")
        batch.drop_column("label")
