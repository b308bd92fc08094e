"""Web console: sessions (a keyed hash of the id, the sealed credential) and a kind-by-index ledger index."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_console"
down_revision = "0013_batch_subjects"
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
    # Keyset pages of one kind, newest first, at any ledger size (the (kind, subject) index needs a sort).
    op.create_index("ix_ledger_entries_kind_idx", "ledger_entries", ["kind", "idx"])


def downgrade() -> None:
    op.drop_index("ix_ledger_entries_kind_idx", table_name="ledger_entries")
    op.drop_table("console_sessions")
