"""Audit lookups: principal, time, decision and status columns on ledger entries, indexed (issue 13).

Existing rows are filled from their own entry text. The subject index on PostgreSQL uses the
"C" collation, so that a prefix is a byte range whatever the database's default collation.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

from mlwarden.ledger.columns import derived

revision = "0018_audit_index"
down_revision = "0017_payload_rows"
branch_labels = None
depends_on = None

_BATCH = 5000


def _backfill(conn: sa.Connection) -> None:
    last = -1
    select = sa.text("SELECT idx, entry FROM ledger_entries WHERE idx > :last ORDER BY idx LIMIT :n")
    update = sa.text(
        "UPDATE ledger_entries SET principal = :p, entry_time = :t, decision = :d, status = :s WHERE idx = :i"
    )
    while True:
        rows = conn.execute(select, {"last": last, "n": _BATCH}).all()
        if not rows:
            return
        params: list[dict[str, Any]] = []
        for idx, text in rows:
            try:
                obj = json.loads(text)
                kind, body = str(obj["kind"]), obj["body"]
                decision, status = derived(kind, body) if isinstance(body, dict) else (None, None)
                params.append({"i": idx, "p": str(obj["principal"]), "t": str(obj["time"]), "d": decision, "s": status})
            except (ValueError, KeyError, TypeError):
                continue  # not an entry: `ledger verify` names it; nothing to copy
        if params:
            conn.execute(update, params)
        last = int(rows[-1][0])


def upgrade() -> None:
    with op.batch_alter_table("ledger_entries") as batch:
        batch.add_column(sa.Column("principal", sa.String(512), nullable=True))
        batch.add_column(sa.Column("entry_time", sa.String(32), nullable=True))
        batch.add_column(sa.Column("decision", sa.String(64), nullable=True))
        batch.add_column(sa.Column("status", sa.SmallInteger, nullable=True))
    _backfill(op.get_bind())
    # (kind, idx) exists since 0016_console
    op.create_index("ix_ledger_entries_principal_idx", "ledger_entries", ["principal", "idx"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute('CREATE INDEX ix_ledger_entries_subject_idx ON ledger_entries (subject COLLATE "C", idx)')
    else:
        op.create_index("ix_ledger_entries_subject_idx", "ledger_entries", ["subject", "idx"])
    op.create_index(
        "ix_ledger_entries_decision", "ledger_entries", ["decision"],
        sqlite_where=sa.text("decision IS NOT NULL"), postgresql_where=sa.text("decision IS NOT NULL"),
    )  # fmt: skip
    for name, columns in (("status_idx", ["status", "idx"]), ("status_principal_idx", ["status", "principal", "idx"])):
        op.create_index(
            f"ix_ledger_entries_{name}", "ledger_entries", columns,
            sqlite_where=sa.text("status IS NOT NULL"), postgresql_where=sa.text("status IS NOT NULL"),
        )  # fmt: skip


def downgrade() -> None:
    for name in ("status_principal_idx", "status_idx", "decision", "subject_idx", "principal_idx"):
        op.drop_index(f"ix_ledger_entries_{name}", "ledger_entries")
    with op.batch_alter_table("ledger_entries") as batch:
        for column in ("status", "decision", "entry_time", "principal"):
            batch.drop_column(column)
