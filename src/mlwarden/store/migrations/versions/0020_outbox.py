"""The alert outbox: one row per (alert, sink), delivered with retries from the database."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020_outbox"
down_revision = "0019_watch"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_outbox",
        sa.Column("idempotency_key", sa.String(160), primary_key=True),
        sa.Column("alert_id", sa.String(64), nullable=False),
        sa.Column("sink", sa.String(64), nullable=False),
        sa.Column("entry_index", sa.BigInteger, nullable=True),
        sa.Column("after_index", sa.BigInteger, nullable=False),
        sa.Column("created", sa.Double, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.Double, nullable=False),
        sa.Column("delivered_at", sa.Double, nullable=True),
        sa.Column("refused_at", sa.Double, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    op.create_index("ix_alert_outbox_due", "alert_outbox", ["delivered_at", "refused_at", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_alert_outbox_due", table_name="alert_outbox")
    op.drop_table("alert_outbox")
