"""``mlwarden serve`` with its ledger writer: workers share one writer; a killed writer means 503s, never unrecorded."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.identity.tokens import create_token
from mlwarden.ledger.merkle import verify_inclusion
from mlwarden.ledger.notes import Checkpoint
from mlwarden.registry.dataset_versions import register_dataset
from mlwarden.registry.governance import approve_and_promote
from mlwarden.registry.models import register_model
from mlwarden.samples import SampleModel, breast_cancer_model
from mlwarden.workspace import init_workspace, open_workspace

START_TIMEOUT = 90.0
WRITER_MODULE = b"mlwarden.cli.ledger_writer"


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleModel:
    return breast_cancer_model(tmp_path_factory.mktemp("writer") / "art", trees=5)


@dataclass
class Served:
    home: Path
    port: int
    token: str
    rows: list[list[float]]
    proc: subprocess.Popen[bytes]
    out: Path
    results: list[tuple[int, dict[str, Any]]] = field(default_factory=list)

    def predict(self, http: httpx.Client) -> tuple[int, dict[str, Any]]:
        response = http.post(
            f"http://127.0.0.1:{self.port}/v1/models/bc/predict",
            json={"inputs": self.rows},
            headers={"Authorization": f"Bearer {self.token}", "Connection": "close"},  # spread over the workers
        )
        return response.status_code, response.json() | {"content-type": response.headers.get("content-type")}

    def writer_pid(self) -> int | None:
        """The ledger writer among serve's children (found in /proc, as an operator would)."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == self.proc.pid and WRITER_MODULE in cmdline:
                return int(entry.name)
        return None

    def log_events(self, name: str) -> list[dict[str, Any]]:
        events = []
        for line in self.out.read_text(errors="replace").splitlines():
            if line.startswith("{") and f'"{name}"' in line:
                events.append(json.loads(line))
        return events

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(tmp_path: Path, sample: SampleModel, workers: int, env: dict[str, str]) -> Iterator[Served]:
    home = tmp_path / "ws"
    options = WorkspaceOptions.from_settings(Settings(database_url=None), home)
    init_workspace(options)
    ws = open_workspace(options)
    try:
        register_dataset(ws, name="breast-cancer-train", path=sample.train_csv, principal="alice")
        register_model(ws, name="bc", path=sample.onnx, card_path=sample.card, principal="alice")
        approve_and_promote(ws, "bc", 1, approver="reviewer")
        token, _ = create_token(ws, name="load", scopes=["inference:read", "audit:read"], principal="admin")
    finally:
        ws.close()
    rows = [[float(v) for v in line.split(",")[:-1]] for line in sample.eval_csv.read_text().splitlines()[1:2]]
    port = _free_port()
    out = tmp_path / "serve.log"
    environment = {**os.environ, "MLWARDEN_RATE_LIMIT": "0", "PYTHONUNBUFFERED": "1", **env}
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = [sys.executable, "-m", "mlwarden.cli", "--home", str(home), "serve", "--port", str(port),
               "--workers", str(workers)]  # fmt: skip
    with out.open("wb") as stdout:
        proc = subprocess.Popen(
            command, env=environment, stdout=stdout, stderr=subprocess.STDOUT, start_new_session=True
        )
    served = Served(home, port, token, rows, proc, out)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve did not start: {out.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield served
    finally:
        served.stop()


@pytest.fixture
def two_workers(tmp_path: Path, sample: SampleModel) -> Iterator[Served]:
    """serve --workers 2; the head signed once an hour, so only on demand and at shutdown."""
    yield from _serve(tmp_path, sample, 2, {"MLWARDEN_LEDGER_SIGN_INTERVAL_SECONDS": "3600"})


def _load(served: Served, stop: threading.Event, threads: int = 6) -> list[threading.Thread]:
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                try:
                    result = served.predict(http)
                except httpx.HTTPError:
                    continue
                with lock:
                    served.results.append(result)

    started = [threading.Thread(target=client, daemon=True) for _ in range(threads)]
    for thread in started:
        thread.start()
    return started


def _wait_for(condition: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _check_recorded(served: Served) -> int:
    """Every 200 answer's decision is in the ledger at the index it was given, and the ledger verifies."""
    ws = open_workspace(WorkspaceOptions.from_settings(Settings(database_url=None), served.home))
    try:
        answered = [body for status, body in served.results if status == 200]
        for body in answered:
            entry, _proof = ws.log.verified_entry(body["ledger_index"])
            assert entry.kind == "prediction"
            assert body["decision_ids"][0] in json.dumps(entry.body)
            assert ws.log.find_ref(body["decision_ids"][0]) == body["ledger_index"]
        assert ws.log.verify().ok
        return len(answered)
    finally:
        ws.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_workers_share_one_writer_and_one_tree(two_workers: Served) -> None:
    """Both workers' predictions land in one gap-free sequence; a decision is provable at once; shutdown signs."""
    served = two_workers
    with httpx.Client(timeout=30) as http:
        status, body = served.predict(http)
        assert status == 200, body
        decision = http.get(f"http://127.0.0.1:{served.port}/v1/decisions/{body['decision_ids'][0]}",
                            headers={"Authorization": f"Bearer {served.token}"})  # fmt: skip
        assert decision.status_code == 200, decision.text
        assert decision.json()["inputs"] == served.rows[0]  # the sealed payload crossed the writer's socket
        proof, note = decision.json()["inclusion_proof"], decision.json()["checkpoint"]
        ws = open_workspace(WorkspaceOptions.from_settings(Settings(database_url=None), served.home))
        try:
            checkpoint = Checkpoint.open(note, ws.log.verifier)
        finally:
            ws.close()
        verify_inclusion(bytes.fromhex(proof["leaf_hash"]), proof["index"], checkpoint.size,
                         [bytes.fromhex(h) for h in proof["proof"]], checkpoint.root)  # fmt: skip
    stop = threading.Event()
    threads = _load(served, stop)
    _wait_for(lambda: sum(1 for s, _ in served.results if s == 200) >= 300, "300 answers")
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    assert {s for s, _ in served.results} == {200}
    served.stop()
    assert served.proc.returncode == 0
    [stopped] = served.log_events("ledger_writer_stopped")
    recorded = {int(pid): n for pid, n in stopped["recorded"].items()}
    workers = {e["pid"] for e in served.log_events("gateway_started")}
    assert len(workers) == 2
    assert set(recorded) <= workers, (recorded, workers)
    assert len(recorded) == 2, f"one worker recorded nothing: {recorded}"
    assert _check_recorded(served) >= 300
    ws = open_workspace(WorkspaceOptions.from_settings(Settings(database_url=None), served.home))
    try:
        assert Checkpoint.open(ws.log.head_note(), ws.log.verifier).size == ws.log.size()  # signed at shutdown
    finally:
        ws.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_killed_writer_means_503_until_it_is_back(two_workers: Served) -> None:
    """SIGKILL the writer under load: 503 problem+json meanwhile, no 200 without its entry, a new writer serves."""
    served = two_workers
    stop = threading.Event()
    threads = _load(served, stop)
    _wait_for(lambda: sum(1 for s, _ in served.results if s == 200) >= 50, "answers before the kill")
    first = served.writer_pid()
    assert first is not None
    os.kill(first, signal.SIGKILL)
    _wait_for(lambda: any(s == 503 for s, _ in served.results), "a 503 while the writer is down")
    _wait_for(lambda: served.writer_pid() not in (None, first), "a new writer")
    after = len(served.results)
    _wait_for(lambda: any(s == 200 for s, _ in served.results[after:]), "answers from the new writer")
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    statuses = {s for s, _ in served.results}
    assert statuses == {200, 503}, statuses
    for status, body in served.results:
        if status == 503:
            assert body["content-type"] == "application/problem+json"
            assert body["type"] == "urn:mlwarden:problem:ledger-unavailable", body
    served.stop()
    assert _check_recorded(served) >= 50
