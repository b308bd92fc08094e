"""The registry: models and their versions, datasets and their versions."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_registry"
down_revision = "0001_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("format", sa.String(32), nullable=False),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("card", sa.Text, nullable=False),
        sa.Column("card_sha256", sa.String(64), nullable=False),
        sa.Column("card_meta", sa.Text, nullable=False),
        sa.Column("input_signature", sa.Text, nullable=True),
        sa.Column("lineage", sa.Text, nullable=False),
        sa.Column("registrant", sa.String(512), nullable=False),
        sa.Column("created", sa.String(32), nullable=False),
        sa.Column("attestation", sa.Text, nullable=False),
        sa.Column("ledger_index", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("name", "sha256", name="uq_model_versions_name_sha256"),
    )
    op.create_table(
        "dataset_versions",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("md5", sa.String(32), nullable=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("format", sa.String(32), nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=True),
        sa.Column("schema_fingerprint", sa.String(64), nullable=True),
        sa.Column("profile", sa.Text, nullable=False),
        sa.Column("registrant", sa.String(512), nullable=False),
        sa.Column("created", sa.String(32), nullable=False),
        sa.Column("attestation", sa.Text, nullable=False),
        sa.Column("ledger_index", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_dataset_versions_sha256", "dataset_versions", ["sha256"])


def downgrade() -> None:
    op.drop_index("ix_dataset_versions_sha256", "dataset_versions")
    op.drop_table("dataset_versions")
    op.drop_table("model_versions")
