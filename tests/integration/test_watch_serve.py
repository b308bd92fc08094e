"""``mlwarden serve`` runs the watcher: the demo's extraction attempt and credential stuffing raise alerts."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.identity.tokens import create_token
from mlwarden.monitor.demo_attacks import demo_attacks
from mlwarden.monitor.watcher import wait_for
from mlwarden.monitor.webhook_receiver import start_receiver
from mlwarden.samples import breast_cancer_model
from mlwarden.workspace import init_workspace, open_workspace
from tests.support.served import bc_in_production

START_TIMEOUT = 90.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _received_ids(inbox: Path) -> set[str]:
    if not inbox.exists():
        return set()
    return {json.loads(line)["idempotency_key"].split("/")[0] for line in inbox.read_text().splitlines() if line}


def test_serve_watches_and_the_demo_attacks_raise_alerts(tmp_path: Path) -> None:
    sample = breast_cancer_model(tmp_path / "art", trees=5)
    home = tmp_path / "ws"
    options = WorkspaceOptions.from_settings(Settings(database_url=None), home)
    init_workspace(options)
    ws = open_workspace(options)
    try:
        bc_in_production(ws, sample)
        token, _ = create_token(ws, name="thief", scopes=["inference:read"], principal="admin")
        audit, _ = create_token(ws, name="soc", scopes=["audit:read"], principal="admin")
    finally:
        ws.close()
    secret = secrets.token_hex(16)
    inbox = tmp_path / "received.jsonl"
    receiver, thread = start_receiver("127.0.0.1", 0, secret=secret.encode(), out=inbox)
    policy = home / "policy.yaml"
    policy.write_text(policy.read_text() + "alerts:\n  sinks:\n    - {name: soc, type: webhook, url: "
                      f"'{receiver.url}', secret_env: MLWARDEN_TEST_WEBHOOK_SECRET, format: ocsf}}\n")  # fmt: skip
    port = _free_port()
    out = tmp_path / "serve.log"
    env = {**os.environ, "MLWARDEN_RATE_LIMIT": "0", "MLWARDEN_REJECTION_SUMMARY_SECONDS": "1",
           "PYTHONUNBUFFERED": "1", "MLWARDEN_TEST_WEBHOOK_SECRET": secret}  # fmt: skip
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("MLWARDEN_DATABASE_URL", None)
    with out.open("wb") as stdout:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlwarden.cli", "--home", str(home), "serve", "--port", str(port)],
            env=env, stdout=stdout, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"serve did not start: {out.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        result = demo_attacks(f"http://127.0.0.1:{port}", token=token, audit_token=audit, model="bc",
                              training_csv=sample.train_csv, timeout=60)  # fmt: skip
        raised = {a["alert_id"] for a in (result["extraction"], result["credential_stuffing"]) if a}
        delivered = wait_for(lambda: raised <= _received_ids(inbox), timeout=60)
    finally:
        _stop(proc)
        receiver.shutdown()
        receiver.server_close()
        thread.join(timeout=10)
    log = out.read_text(errors="replace")[-3000:]
    assert delivered, (raised, _received_ids(inbox), log)
    findings = [json.loads(line)["alert"] for line in inbox.read_text().splitlines()]
    assert {f["class_uid"] for f in findings} == {2004}  # OCSF Detection Finding, signed and verified on receipt
    assert result["extraction"] is not None, log
    assert result["extraction"]["principal"].startswith("token:"), result
    assert result["credential_stuffing"] is not None, log
    assert result["credential_stuffing"]["subject"] == "source:127.0.0.1"


def test_serve_refuses_a_bad_rules_file_naming_the_line(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    init_workspace(WorkspaceOptions.from_settings(Settings(database_url=None), home))
    policy = home / "policy.yaml"
    lines = policy.read_text().splitlines()
    policy.write_text("\n".join([*lines, "alerts:", "  inference.extraction: {treshold: 5}"]) + "\n")
    env = {k: v for k, v in os.environ.items() if k != "MLWARDEN_DATABASE_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "mlwarden.cli", "--home", str(home), "serve", "--port", str(_free_port())],
        env=env, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert f"line {len(lines) + 2}: alerts.inference.extraction: unknown setting 'treshold'" in done.stderr.decode()
