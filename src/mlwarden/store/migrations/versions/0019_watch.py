"""The watcher's durable cursor and the alerts it raised (a cache of their ledger entries)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019_watch"
down_revision = "0018_audit_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "watch_cursors",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("next_index", sa.BigInteger, nullable=False),
        sa.Column("updated", sa.String(32), nullable=False),
    )
    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.String(40), primary_key=True),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("principal", sa.String(512), nullable=True),
        sa.Column("subject", sa.String(512), nullable=True),
        sa.Column("first_index", sa.BigInteger, nullable=False),
        sa.Column("last_index", sa.BigInteger, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("time", sa.String(32), nullable=False),
        sa.Column("entry_index", sa.BigInteger, nullable=False),
        sa.Column("acknowledged_by", sa.String(512), nullable=True),
        sa.Column("acknowledged_at", sa.String(32), nullable=True),
        sa.Column("ack_reason", sa.Text, nullable=True),
        sa.Column("ack_index", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_alerts_rule", "alerts", ["rule"])


def downgrade() -> None:
    op.drop_index("ix_alerts_rule", table_name="alerts")
    op.drop_table("alerts")
    op.drop_table("watch_cursors")
