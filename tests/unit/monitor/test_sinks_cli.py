"""``mlwarden sinks``: check, status, deliver, and the local receiver as a real process."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import httpx
import pytest

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.monitor.sink_config import load_sinks
from mlwarden.monitor.webhook_signature import sign_webhook
from mlwarden.workspace import open_workspace
from tests.support.alerts import raise_alert
from tests.support.cli import Cli
from tests.support.processes import Child
from tests.unit.monitor.ports import free_port

SECRET = "0123456789abcdef0123456789abcdef"  # noqa: S105 - a test secret


def _policy(home: Path, sinks: str) -> None:
    policy = home / "policy.yaml"
    policy.write_text(policy.read_text() + "\nalerts:\n  sinks:\n" + sinks)


@pytest.fixture
def initialised(cli: Cli, home: Path) -> Path:
    assert cli("init").code == 0
    return home


def test_check_lists_sinks_without_their_secrets(cli: Cli, initialised: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`sinks check` shows each sink and where its secret comes from, never the secret."""
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    _policy(initialised, "    - {name: soc, type: webhook, url: 'https://soc.example/h', secret_env: HOOK_SECRET}\n"
                         "    - {name: archive, type: file, path: alerts.jsonl}\n")  # fmt: skip
    result = cli("sinks", "check")
    assert result.code == 0, result.err
    (doc,) = result.json_lines()
    assert [(s["name"], s["type"]) for s in doc["sinks"]] == [("soc", "webhook"), ("archive", "file")]
    assert doc["sinks"][0]["secret"] == "from secret_env"  # noqa: S105 - where it comes from
    assert SECRET not in result.out


def test_check_names_the_line_of_a_plain_text_secret(cli: Cli, initialised: Path) -> None:
    """A secret written into policy.yaml: exit 2, one line, the file and line, no traceback, no secret echoed."""
    _policy(initialised, "    - name: soc\n      type: webhook\n      url: https://soc.example/h\n"
                         "      secret: hunter2hunter2hunter2\n")  # fmt: skip
    result = cli("sinks", "check")
    assert result.code == 2
    lines = (initialised / "policy.yaml").read_text().splitlines()
    line = next(n for n, text in enumerate(lines, 1) if "secret:" in text)
    assert result.err.startswith(f"error: {initialised / 'policy.yaml'}:{line}: alerts.sinks[0].secret: ")
    assert result.err.count("\n") == 1
    assert "hunter2" not in result.err


def test_status_and_deliver_once(cli: Cli, initialised: Path) -> None:
    """Raised alerts wait in `sinks status`; `sinks deliver --once` writes them and empties the backlog."""
    _policy(initialised, "    - {name: archive, type: file, path: alerts.jsonl}\n")
    ws = open_workspace(WorkspaceOptions.from_settings(Settings(database_url=None), initialised))
    try:
        sinks = [c.sink for c in load_sinks(ws.options.paths.policy, environ={})]
        alerts = [raise_alert(ws, sinks, principal=f"tok_{n}") for n in range(2)]
    finally:
        ws.close()
    status = cli("sinks", "status").json_lines()[0]["sinks"]
    assert [(s["sink"], s["pending"]) for s in status] == [("archive", 2)]
    result = cli("sinks", "deliver", "--once")
    assert result.code == 0, result.err
    assert result.json_lines()[0]["delivered"] == 2
    assert cli("sinks", "status").json_lines()[0]["sinks"] == []
    written = [json.loads(line) for line in (initialised / "alerts.jsonl").read_text().splitlines()]
    assert sorted(w["alert"]["alert_id"] for w in written) == sorted(a.alert_id for a in alerts)


def test_receive_without_a_secret_is_a_one_line_error(cli: Cli, tmp_path: Path) -> None:
    """No secret in the named variable: exit 2 before listening."""
    result = cli("sinks", "receive", "--port", "0", "--out", str(tmp_path / "o"), "--secret-env", "NOPE_NOT_SET")
    assert result.code == 2
    assert result.err == "error: environment variable NOPE_NOT_SET is not set (or give --secret-file)\n"


def test_the_receiver_process_verifies_and_writes(tmp_path: Path) -> None:
    """`mlwarden sinks receive` as the demo starts it: signed deliveries written once, forged ones refused."""
    port = free_port()
    out = tmp_path / "received.jsonl"
    env = {**os.environ, "MLWARDEN_WEBHOOK_SECRET": SECRET}
    child = Child([sys.executable, "-m", "mlwarden.cli", "sinks", "receive", "--port", str(port), "--out", str(out)],
                  stderr_path=tmp_path / "stderr", env=env)  # fmt: skip
    try:
        assert child.readline(timeout=60).decode().startswith(f"listening on http://127.0.0.1:{port}/")
        body = b'{"alert_id":"alrt_1"}'
        headers = {**sign_webhook(SECRET.encode(), body, int(time.time())), "Idempotency-Key": "alrt_1/soc"}
        url = f"http://127.0.0.1:{port}/"
        assert httpx.post(url, content=body, headers=headers, timeout=10).json() == {"status": "stored"}
        assert httpx.post(url, content=body, headers=headers, timeout=10).json() == {"status": "duplicate"}
        forged = {**headers, "X-Mlwarden-Signature": "v1=" + "0" * 64}
        assert httpx.post(url, content=body, headers=forged, timeout=10).status_code == 401
    finally:
        child.kill(timeout=10)
    (line,) = [json.loads(text) for text in out.read_text().splitlines()]
    assert (line["idempotency_key"], line["alert"]) == ("alrt_1/soc", {"alert_id": "alrt_1"})
