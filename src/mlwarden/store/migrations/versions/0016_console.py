"""Web console sessions: a keyed hash of the session id and the sealed credential behind it."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_console"
down_revision = "0011_screening"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("principal", sa.String(512), nullable=False),
        sa.Column("created", sa.String(32), nullable=False),
        sa.Column("expires", sa.String(32), nullable=False),
        sa.Column("sealed", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("console_sessions")
