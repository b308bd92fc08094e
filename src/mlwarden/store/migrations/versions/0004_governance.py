"""Governance: approvals of model versions and reports attached to them."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_governance"
down_revision = "0003_gateway"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "approvals",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("principal", sa.String(512), primary_key=True),
        sa.Column("created", sa.String(32), nullable=False),
        sa.Column("comment", sa.Text, nullable=True),
    )
    op.create_table(
        "attachments",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("filename", sa.String(256), nullable=False),
        sa.Column("created", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("attachments")
    op.drop_table("approvals")
