"""Erasable payloads: wrapped data keys, encrypted payloads and erasure tombstones (issue 12)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_privacy"
down_revision = "0009_lease"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "privacy_keys",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("scope_tag", sa.String(64), nullable=False),
        sa.Column("field", sa.String(16), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("kek_id", sa.String(16), nullable=False),
        sa.Column("wrapped", sa.LargeBinary, nullable=False),
        sa.Column("created", sa.String(32), nullable=False),
        sa.UniqueConstraint("scope_tag", "field", "day", name="uq_privacy_keys_slot"),
    )
    op.create_index("ix_privacy_keys_field_day", "privacy_keys", ["field", "day"])
    op.create_table(
        "privacy_payloads",
        sa.Column("decision_id", sa.String(64), primary_key=True),
        sa.Column("field", sa.String(16), primary_key=True),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("kek_id", sa.String(16), nullable=True),
        sa.Column("wrapped_key", sa.LargeBinary, nullable=True),
        sa.Column("nonce", sa.LargeBinary(12), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
        sa.Column("ledger_index", sa.BigInteger, nullable=True),
        sa.Column("erasure_id", sa.String(32), nullable=True),
    )
    op.create_index("ix_privacy_payloads_field_day", "privacy_payloads", ["field", "day"])
    op.create_table(
        "privacy_erasures",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("erasure_id", sa.String(32), nullable=False),
        sa.Column("erased", sa.String(32), nullable=False),
    )
    op.create_index("ix_privacy_erasures_erasure_id", "privacy_erasures", ["erasure_id"])


def downgrade() -> None:
    op.drop_table("privacy_erasures")
    op.drop_table("privacy_payloads")
    op.drop_table("privacy_keys")
