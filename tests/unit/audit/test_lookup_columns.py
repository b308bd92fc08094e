"""The lookup columns: filled at append (both paths), backfilled by the migration, checked by ``ledger verify``."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.ledger.columns import derived
from mlwarden.ledger.entry import PreparedEntry
from mlwarden.ledger.wire import decode_entries, encode_entry, entries_frames, split_frames
from mlwarden.store.migrate import MIGRATIONS, upgrade
from mlwarden.workspace import Workspace, open_workspace
from tests.support.cli import Cli
from tests.unit.audit.conftest import Recorded, record_varied

COLUMNS = "SELECT idx, entry, principal, entry_time, decision, status FROM ledger_entries ORDER BY idx"


def _expected(entry_text: str) -> tuple[str, str, str | None, int | None]:
    entry = json.loads(entry_text)
    return (entry["principal"], entry["time"], *derived(entry["kind"], entry["body"]))


def _check_all(ws: Workspace) -> int:
    with ws.engine.connect() as conn:
        rows = conn.execute(text(COLUMNS)).all()
    for idx, entry_text, *columns in rows:
        assert tuple(columns) == _expected(entry_text), idx
    return len(rows)


def test_appends_fill_every_column(recorded: Recorded) -> None:
    """Group commits and transactions both write principal, time, decision and status from the entry."""
    ws = recorded.ws
    with ws.log.transaction() as tx:
        tx.append(kind="request.rejected", subject="/v1/x", body={"status": 401, "reason": "r"}, principal="token:t")
        tx.append(kind="feedback", subject="model:bc:1", body={"decision_id": "d-x"}, principal="token:t")
    assert _check_all(ws) == ws.log.size()
    with ws.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM ledger_entries WHERE status IS NOT NULL")).scalar_one() > 5
        assert conn.execute(text("SELECT status FROM ledger_entries WHERE decision = 'd-x'")).all() == [(None,)]


def _alembic(ws: Workspace, action: str, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with ws.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, revision)


def test_migration_backfills_existing_rows(recorded: Recorded) -> None:
    """Rows recorded before 0018 get their columns from their own text; down and up again is lossless."""
    ws = recorded.ws
    _alembic(ws, "downgrade", "0017_payload_rows")
    with ws.engine.connect() as conn:
        columns = set(conn.execute(text("SELECT * FROM ledger_entries LIMIT 1")).keys())
    assert not columns & {"principal", "entry_time", "decision", "status"}
    upgrade(ws.engine)
    assert _check_all(ws) == ws.log.size() > 90


@pytest.fixture
def cli_workspace(cli: Cli, home: Path) -> Path:
    """A CLI workspace (SQLite) with varied entries."""
    assert cli("init").code == 0
    ws = open_workspace(WorkspaceOptions.from_settings(Settings(database_url=None), home))
    try:
        record_varied(ws, [datetime.fromisoformat("2026-11-20T08:00:00+00:00")], n=24)
    finally:
        ws.close()
    return home


@pytest.mark.parametrize(
    ("sql", "needle"),
    [
        ("UPDATE ledger_entries SET principal = 'token:alice' WHERE idx = 7", "principal column"),
        ("UPDATE ledger_entries SET entry_time = '2030-01-01T00:00:00.000000Z' WHERE idx = 7", "time column"),
        ("UPDATE ledger_entries SET status = 200 WHERE idx = 7", "decision/status columns"),
        ("UPDATE ledger_entries SET decision = 'd-0000' WHERE idx = 7", "decision/status columns"),
        ("UPDATE ledger_entries SET principal = NULL WHERE idx = 7", "principal column"),
    ],
)
def test_verify_names_a_row_whose_lookup_column_was_altered(
    cli: Cli, cli_workspace: Path, sql: str, needle: str
) -> None:
    """Someone with database access re-labels one row: verify exits 1 naming that index and the column."""
    assert cli("ledger", "verify").code == 0
    db = sqlite3.connect(cli_workspace / "mlwarden.db", isolation_level=None)
    try:
        db.execute(sql)
    finally:
        db.close()
    result = cli("ledger", "verify", "--json")
    assert result.code == 1
    rows = json.loads(result.out)["rows"]
    assert [(r["table"], r["row"]) for r in rows] == [("ledger_entries", "7")]
    assert needle in rows[0]["problem"]


def test_the_writer_wire_derives_the_columns_from_the_entry_itself() -> None:
    """Entries reaching ``serve``'s ledger writer carry no column values: the writer derives them from the body."""
    sent = [
        PreparedEntry.build(kind="feedback", subject="model:bc:1", principal="token:t", body={"decision_id": "d-9"}),
        PreparedEntry.build(kind="request.rejected", subject="/v1/x", principal="token:t", body={"status": 429}),
        PreparedEntry.build(kind="external.x", subject="s", principal="token:t", body={"status": 429,
                                                                                       "decision_id": "d-9"}),
    ]  # fmt: skip
    frame = b"".join(body for body, _n in entries_frames([encode_entry(e) for e in sent]))
    _kind, body = split_frames(bytearray(frame))[0]
    received = decode_entries(body)
    assert [(e.decision, e.status) for e in received] == [("d-9", None), (None, 429), (None, None)]
    assert [(e.decision, e.status) for e in received] == [(e.decision, e.status) for e in sent]
