"""``mlwarden audit query`` and ``audit export`` as a user meets them: formats, filters, bad input, --follow."""

from __future__ import annotations

import csv
import functools
import io
import json
import operator
import os
import signal
import sys
from datetime import datetime
from pathlib import Path

import pytest

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.workspace import open_workspace
from tests.support.cli import Cli
from tests.support.processes import Child
from tests.unit.audit.conftest import START, record_varied


def _options(home: Path) -> WorkspaceOptions:
    return WorkspaceOptions.from_settings(Settings(database_url=None), home)


@pytest.fixture
def filled(cli: Cli, home: Path, clock: list[datetime]) -> Path:
    """A CLI workspace holding the varied ledger (entries 0-47)."""
    assert cli("init").code == 0
    ws = open_workspace(_options(home))
    try:
        record_varied(ws, clock, n=48)
        ws.log.append(kind="external.note", subject="=HYPERLINK(\"http://x\")", principal="@evil\x1b[31m",
                      body={"cell": "+cmd|' /C calc'!A0"})  # fmt: skip
    finally:
        ws.close()
    return home


def test_query_json_lines_match_the_filter(cli: Cli, filled: Path) -> None:
    """--json prints one entry per line, ascending, each matching every filter."""
    result = cli("audit", "query", "--kind", "prediction", "--principal", "token:alice", "--json")
    assert result.code == 0, result.err
    rows = result.json_lines()
    assert rows
    assert [r["index"] for r in rows] == sorted(r["index"] for r in rows)
    assert {(r["kind"], r["principal"]) for r in rows} == {("prediction", "token:alice")}
    assert set(rows[0]) == {"index", "kind", "time", "principal", "subject", "body"}


def test_table_is_the_default_and_pages_say_how_to_continue(cli: Cli, filled: Path) -> None:
    """The table has a header and one line per entry; a full page tells the next --since-index."""
    result = cli("audit", "query", "--model", "bc", "--limit", "3")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split()[:5] == ["INDEX", "TIME", "KIND", "PRINCIPAL", "SUBJECT"]
    assert len(lines) == 4
    assert all("model:bc" in line for line in lines[1:])
    assert "--since-index" in result.err
    follow_on = int(result.err.rsplit("--since-index", 1)[1])
    rest = cli("audit", "query", "--model", "bc", "--since-index", str(follow_on), "--json").json_lines()
    assert all(r["index"] >= follow_on for r in rest)
    assert rest


def test_time_and_decision_filters(cli: Cli, filled: Path) -> None:
    """--since/--until take ISO times; --decision finds the prediction that made it and feedback about it."""
    since = "2026-11-20T09:00:00Z"
    rows = cli("audit", "query", "--since", since, "--until", "2026-11-20T10:00:00Z", "--json").json_lines()
    assert [r["time"][:16] for r in rows] == [f"2026-11-20T09:{m}0" for m in range(6)]
    decided = cli("audit", "query", "--decision", "d-0008b", "--json").json_lines()
    assert [(r["kind"], r["index"]) for r in decided] == [("prediction", 8)]
    assert cli("audit", "query", "--since", "1h", "--json").json_lines() == []  # the clock is days past START


def test_csv_cells_never_run_as_formulas(cli: Cli, filled: Path) -> None:
    """CSV has a header; a cell a caller chose that starts like a formula is quoted inert."""
    result = cli("audit", "query", "--kind", "external.note", "--csv")
    assert result.code == 0, result.err
    rows = list(csv.reader(io.StringIO(result.out)))
    assert rows[0] == ["index", "time", "kind", "principal", "subject", "body"]
    (_index, _time, kind, principal, subject, body) = rows[1]
    assert kind == "external.note"
    assert principal.startswith("'@")
    assert subject.startswith("'=")
    assert json.loads(body) == {"cell": "+cmd|' /C calc'!A0"}


def test_table_shows_terminal_escapes_as_text(cli: Cli, filled: Path) -> None:
    """Control characters in a principal cannot reach the terminal."""
    result = cli("audit", "query", "--kind", "external.note")
    assert "\x1b" not in result.out
    assert "@evil?[31m" in result.out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--since", "yesterday"], "since 'yesterday' is not a time"),
        (["--until", "3x"], "until '3x' is not a time"),
        (["--limit", "0"], "limit must be between"),
        (["--since-index", "-4"], "since_index must be 0 or more"),
        (["--kind", "Bad Kind"], "is not an entry kind"),
        (["--json", "--csv"], "one of --json and --csv"),
        (["--status", "7"], "status must be an HTTP status"),
    ],
)
def test_bad_options_are_one_line_errors(cli: Cli, filled: Path, args: list[str], needle: str) -> None:
    """Each bad option: exit 2 and one line naming it, no traceback."""
    result = cli("audit", "query", *args)
    assert result.code == 2
    assert needle in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert "Traceback" not in result.err


def test_no_workspace_is_a_clear_error(cli: Cli, home: Path) -> None:
    """Without a workspace: exit 2 and a one-line hint."""
    result = cli("audit", "query")
    assert result.code == 2
    assert "no mlwarden workspace" in result.err


@pytest.mark.parametrize("fmt", ["jsonl", "ocsf", "ecs"])
def test_export_writes_every_entry_from_an_index(cli: Cli, filled: Path, tmp_path: Path, fmt: str) -> None:
    """export --format F --since-index N --out FILE: one JSON object per entry from N on, in that format."""
    out = tmp_path / f"export.{fmt}"
    result = cli("audit", "export", "--format", fmt, "--since-index", "40", "--out", str(out))
    assert result.code == 0, result.err
    docs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(docs) == 9  # entries 40..48
    path = {"jsonl": ("index",), "ocsf": ("metadata", "sequence"), "ecs": ("event", "sequence")}[fmt]
    assert [functools.reduce(operator.getitem, path, d) for d in docs] == list(range(40, 49))
    assert f"exported 9 entries to {out} as {fmt}" in result.err


def test_export_to_stdout_and_a_bad_format(cli: Cli, filled: Path) -> None:
    """Without --out the lines go to stdout; an unknown format is a usage error."""
    result = cli("audit", "export", "--format", "ocsf")
    assert len(result.json_lines()) == 49
    assert {d["class_uid"] for d in result.json_lines()} == {6003}
    bad = cli("audit", "export", "--format", "cef")
    assert bad.code == 2


def test_follow_prints_new_entries_until_terminated(filled: Path, tmp_path: Path, clock: list[datetime]) -> None:
    """A real ``audit query --follow`` process prints old matches, then each new one, and exits 0 on SIGTERM."""
    env = {k: v for k, v in os.environ.items() if k != "MLWARDEN_DATABASE_URL"}
    child = Child(
        [sys.executable, "-m", "mlwarden.cli", "--home", str(filled), "audit", "query", "--follow", "--json",
         "--principal", "token:zoe"],
        stderr_path=tmp_path / "follow.err", env={**env, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        ws = open_workspace(_options(filled))
        try:
            clock.append(START)
            for n in range(3):
                ws.log.append(kind="external.note", subject="s", body={"n": n}, principal="token:zoe")
                ws.log.append(kind="external.note", subject="s", body={"n": n}, principal="token:other")
                line = json.loads(child.readline(timeout=60))
                assert (line["principal"], line["body"]) == ("token:zoe", {"n": n})
        finally:
            ws.close()
        os.killpg(child.proc.pid, signal.SIGTERM)
        assert child.proc.wait(timeout=30) == 0, child.stderr()
    finally:
        child.kill(timeout=30)
