"""The gateway: API tokens, references (decision ids) into the ledger, entry lookup by kind and subject."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_gateway"
down_revision = "0002_registry"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("models", sa.Text, nullable=False),
        sa.Column("created", sa.String(32), nullable=False),
        sa.Column("expires", sa.String(32), nullable=True),
        sa.Column("revoked", sa.String(32), nullable=True),
        sa.Column("created_by", sa.String(512), nullable=False),
    )
    op.create_table(
        "ledger_refs",
        sa.Column("ref", sa.String(64), primary_key=True),
        sa.Column("idx", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_ledger_entries_kind_subject", "ledger_entries", ["kind", "subject"])


def downgrade() -> None:
    op.drop_index("ix_ledger_entries_kind_subject", "ledger_entries")
    op.drop_table("ledger_refs")
    op.drop_table("tokens")
