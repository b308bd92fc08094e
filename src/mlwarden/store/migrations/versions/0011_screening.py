"""Fitted screening detectors per dataset version: the hash of their file, signed with what they came from."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_screening"
down_revision = "0010_privacy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "screening_detectors",
        sa.Column("dataset", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("format", sa.Integer, nullable=False),
        sa.Column("reference_sha256", sa.String(64), nullable=False),
        sa.Column("detectors_sha256", sa.String(64), nullable=False),
        sa.Column("created", sa.String(32), nullable=False),
        sa.Column("attestation", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("screening_detectors")
