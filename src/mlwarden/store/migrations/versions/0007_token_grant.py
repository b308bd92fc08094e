"""The scopes an admin token may hand out (``tokens.grant``); NULL for tokens made before grants."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_token_grant"
down_revision = "0006_aliases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("grant", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("grant")
