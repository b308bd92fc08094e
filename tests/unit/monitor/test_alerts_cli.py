"""``mlwarden watch --once``, ``alerts list [--json] [--open]`` and ``alerts ack``, in-process."""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path

import pytest

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.workspace import local_principal, open_workspace
from tests.support.cli import Cli


def test_watch_list_ack(cli: Cli, home: Path) -> None:
    assert cli("init").code == 0
    ws = open_workspace(WorkspaceOptions.from_settings(Settings(database_url=None), home))
    try:
        for i in range(20):
            ws.log.append(kind="access.denied", subject=f"model:m{i}", principal="token:probe", body={})
    finally:
        ws.close()
    watched = cli("watch", "--once")
    assert watched.code == 0, watched.err
    assert json.loads(watched.out)["raised"] == 1
    listed = json.loads(cli("alerts", "list", "--json").out)["alerts"]
    assert [(a["rule"], a["principal"], a["acknowledged"]) for a in listed] == [
        ("access.denied_burst", "token:probe", False)
    ]
    table = cli("alerts", "list").out
    assert listed[0]["alert_id"] in table
    assert "open" in table
    acked = cli("alerts", "ack", listed[0]["alert_id"], "--reason", "pen test")
    assert acked.code == 0, acked.err
    assert json.loads(acked.out)["ack"]["by"] == local_principal()
    assert json.loads(cli("alerts", "list", "--json", "--open").out)["alerts"] == []
    again = cli("alerts", "ack", listed[0]["alert_id"], "--reason", "again")
    assert again.code == 2
    assert again.err.startswith("error: ")
    assert again.err.count("\n") == 1
    unknown = cli("alerts", "ack", "alrt_nope", "--reason", "x")
    assert unknown.code != 0
    assert unknown.err.count("\n") == 1


def test_an_acknowledgement_names_the_os_account_not_the_environment(
    cli: Cli, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``USER``/``LOGNAME`` claiming someone else change nothing: the ack entry names the process's real account."""
    assert cli("init").code == 0
    ws = open_workspace(WorkspaceOptions.from_settings(Settings(database_url=None), home))
    try:
        for i in range(20):
            ws.log.append(kind="access.denied", subject=f"model:m{i}", principal="token:probe", body={})
    finally:
        ws.close()
    assert cli("watch", "--once").code == 0
    [alert] = json.loads(cli("alerts", "list", "--json").out)["alerts"]
    monkeypatch.setenv("USER", "mallory")
    monkeypatch.setenv("LOGNAME", "mallory")
    acked = cli("alerts", "ack", alert["alert_id"], "--reason", "pen test")
    assert acked.code == 0, acked.err
    [entry] = cli("ledger", "tail", "-n", "1").json_lines()
    assert entry["kind"] == "alert.acknowledged"
    assert entry["principal"] == f"local:{pwd.getpwuid(os.getuid()).pw_name}"
    assert "mallory" not in json.dumps(entry)
