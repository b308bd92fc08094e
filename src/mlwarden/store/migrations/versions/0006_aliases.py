"""Model aliases (e.g. champion, challenger) pointing at versions."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_aliases"
down_revision = "0005_data"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_aliases",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("alias", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("model_aliases")
