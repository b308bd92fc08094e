"""One sealed row per prediction decision (inputs and outputs together): ``privacy_rows`` (issue 12, speed).

Rows written before stay in ``privacy_payloads`` and stay readable, erasable and verifiable:
readers look in both tables. No data moves.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_payload_rows"
down_revision = "0016_console"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "privacy_rows",
        sa.Column("decision_id", sa.String(64), primary_key=True),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("inputs_key", sa.String(32), nullable=False),
        sa.Column("outputs_key", sa.String(32), nullable=False),
        sa.Column("share", sa.LargeBinary, nullable=True),
        sa.Column("inputs", sa.LargeBinary, nullable=False),
        sa.Column("outputs", sa.LargeBinary, nullable=False),
        sa.Column("ledger_index", sa.BigInteger, nullable=True),
        sa.Column("erasure_id", sa.String(32), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("privacy_rows")
